"""Running under systemd: socket activation and the notification protocol.

:mod:`~mirrorbits.systemd.activation` tells which inherited descriptor is the HTTP socket
and which the control one; :mod:`~mirrorbits.systemd.notify` tells systemd when the daemon
serves, reloads and stops (``Type=notify``). Both read their environment once, in
``mirrorbits.tap``, and take it out of ``os.environ`` so that child processes do not act
on it. The units are in ``contrib/systemd/``.
"""

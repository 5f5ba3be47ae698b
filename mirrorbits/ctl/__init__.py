"""``mirrorbits-ctl``: the client of the daemon's control channel (the server side is
:mod:`mirrorbits.control`; both speak the AMP commands of :mod:`mirrorbits.control.commands`)."""

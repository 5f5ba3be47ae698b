"""The daemon's control channel: its AMP commands (shared with the :mod:`mirrorbits.ctl`
client), the responders, and the mirror checks and YAML view both sides use."""

"""``python -m mirrorbits.ctl``: the same as ``mirrorbits-ctl``."""

from mirrorbits.ctl.main import main

main()

"""``python -m mirrorbits.workers``: an HTTP worker process (started by the daemon)."""

from mirrorbits.workers.child import main

main()

"""The scan benchmark: parse and commit a large rsync listing, watching Redis stalls."""

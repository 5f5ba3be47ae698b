"""An annotated sample configuration file, shipped as documentation."""

EXAMPLE_CONFIG = """\
# mirrorbits.conf: configuration of the mirrorbits daemon (YAML).
#
# Every setting below is commented out and shows its default value; only Repository
# must be set. Key names are case-sensitive. Booleans accept true/false, yes/no, on/off
# (and y/n). An empty value (``Key:``) keeps the default. Send SIGHUP to the daemon, or run
# ``mirrorbits-ctl reload``, to reload this file: the daemon logs (and mirrorbits-ctl
# prints) a warning for each unknown key, with the closest known one, and for each value
# that may not do what was meant; if the new file is invalid it says why and keeps its
# current configuration.

## Local repository and web pages

# Directory holding the reference copy of the files that mirrors carry (required).
# A relative path is taken from the daemon's working directory.
#Repository: /srv/repo

# Directory whose base.xhtml, mirrorlist.xhtml or mirrorstats.xhtml (twisted.web.template
# files) replace the ones shipped with mirrorbits. Empty: the shipped templates.
#Templates: ""

# URL prefix of self-hosted JavaScript/CSS/fonts. The pages need none (inline map and CSS).
#LocalJSPath: ""

## HTTP front-end

# What a download request returns: auto (JSON if the client asks for it, else a
# redirect), json (always JSON) or redirect (always a redirect).
#OutputMode: auto

# Address and port of the HTTP server; "unix:/path/to/socket" for a UNIX socket.
#ListenAddress: ":8080"

# Compress responses with gzip for clients that accept it.
#Gzip: false

# When false, a request received over plain HTTP (X-Forwarded-Proto: http) is only
# redirected to mirrors that serve HTTP.
#AllowHTTPToHTTPSRedirects: true

# Seconds during which repeated (Range) requests for the same file by the same client
# (IP address and User-Agent) count as one download. 0: count every request.
#SameDownloadInterval: 600

# Maximum number of "Link: <...>; rel=duplicate" headers on a redirect (0 or more).
#MaxLinkHeaders: 10

# Proxies trusted to give the client's address in X-Forwarded-For: a list of networks
# (CIDR) or single addresses, for instance [127.0.0.1, "10.0.0.0/8", "::1"].
# Empty: the header is believed whoever sends it.
#TrustedProxies: []

# Seconds a client has to send a whole request, from the moment it connects (or sends the
# first byte of its next request on a kept-alive connection), however slowly the bytes
# arrive; it is also how long an idle kept-alive connection stays open. Slower clients are
# disconnected without an answer.
#HTTPReadTimeout: 10

# HTTP worker processes sharing the listening port (children of the daemon, restarted when
# they die); scans, health checks and the control channel stay in the daemon. 1: the daemon
# serves HTTP itself. Default: one per CPU core (1 on the embedded configuration).
#Workers:

# Files whose records (local info, mirrors, info on each mirror) each HTTP process keeps in
# memory, filled from Redis at start-up (most downloaded first) and kept fresh by pub/sub.
# Their file-on-mirror records are bounded too, at five per file on average (1,000,000 for
# 200,000 files): a file on 27 mirrors has 27 of them, so the default then holds ~36,000
# files, about 15 KiB each, ~590 MiB per process (docs/performance.md).
#CacheFiles: 200000

## Redis

# host:port of the Redis server (used when no sentinel is configured or none answers).
#RedisAddress: "127.0.0.1:6379"

# Password sent with AUTH; empty: no authentication.
#RedisPassword: ""

# Database number (0 to 15 on a Redis server with the default 16 databases).
#RedisDB: 0

# Redis Sentinel: name of the master, and the sentinels to ask, in order. Example:
#   RedisSentinelMasterName: mymaster
#   RedisSentinels:
#     - Host: 10.0.0.1:26379
#     - Host: 10.0.0.2:26379
#RedisSentinelMasterName: ""
#RedisSentinels: []

## Logs and files

# Directory where downloads.log is written; empty: no download log.
#LogDir: ""

# Directory where a process that stops while Redis is unreachable keeps the downloads it
# counted and could not write (one file per process; made if missing); the daemon writes
# them to Redis once it can, counted once, then deletes the file. Not set: under systemd
# with StateDirectory= (the shipped unit), $STATE_DIRECTORY/stats-spool, i.e.
# /var/lib/mirrorbits/stats-spool; else none. Empty: such downloads are lost (logged).
#StatsSpoolDir: ""

# Path, relative to each mirror's URL, of a file holding the Unix time of its last
# update; empty: not used.
#TraceFileLocation: ""

# Directory holding GeoLite2-City.mmdb and GeoLite2-ASN.mmdb.
#GeoipDatabasePath: /usr/share/GeoIP/

## Scans and health checks

# Number of mirrors scanned at the same time (1 or more).
#ConcurrentSync: 5

# Mirrors with neither an rsync nor an FTP URL are scanned through their HTTP index pages
# (nginx autoindex, HTML or JSON; Apache mod_autoindex): requests at a time, seconds between
# two requests, seconds per request, HEAD requests per scan for sizes the pages round.
#HTTPScan: {Concurrency: 4, Delay: 0, Timeout: 30, MaxHeadRequests: 10000}

# Minutes between two automatic scans of a mirror; 0: again as soon as a scan ends.
#ScanInterval: 30

# Entries (files, directories, skipped lines) one mirror listing may have: past it the scan
# is abandoned and the mirror keeps the files of its previous scan. About 250 bytes of memory
# per file while a listing is read.
#MaxScanEntries: 5000000

# Minutes between two health checks of a mirror; 0: every second.
#CheckInterval: 1

# Seconds between two liveness probes of an up mirror (a TCP connection, no request); after
# 2 failures in a row the mirror is marked down at once. One idle connection is also held to
# each up mirror: lost, and a new one refused, the mirror is marked down at once. It is back
# only once a health check finds it up (it is rescanned first). 0: no liveness probes and no
# held connections.
#LivenessInterval: 3

# Seconds between two verification turns of an up mirror: one HEAD for one file it is believed
# to hold, or one per two users sent to it (at most 4 a turn, over one connection), its most
# downloaded files most often. A 404 or another size drops that file there at once, rescans the
# mirror and verifies it every second for 20 s. A mirror that answered one within
# LivenessInterval gets no liveness probe. 0: no verification.
#VerifyInterval: 2

# Minutes between two scans of the local repository; 0: only on request.
#RepositoryScanInterval: 5

# Watch the repository with inotify (Linux): a file closed after writing, moved or deleted
# is published within a second, without waiting for the scan above.
#WatchLocalFiles: true

# Indexed files one scan of the daemon (at start, periodic, after an inotify overflow) may
# remove: a number of files, or a share of the indexed files ("10%"). The index is shared by
# every node: a scan that would remove more keeps them all indexed, says so once and tries
# again at the next scan (new and changed files are still indexed); files below a directory
# found empty (a mount point not mounted) or that could not be read are kept the same way.
# "mirrorbits-ctl refresh" removes them. "100%": no limit (an empty repository is still kept).
#RepositoryScanMaxRemove: 10%

# Detect and correct mirrors whose file times are shifted (wrong timezone).
#FixTimezoneOffsets: false

# Checksums computed for the files of the local repository (?sha256 and the like, the
# mirror list and JSON answers show them; with none on, they show none).
#Hashes: {SHA1: false, SHA256: true, MD5: false}

# Mark a mirror down when its health check is redirected (for mirrors that do not say
# whether they allow redirects).
#DisallowRedirects: false

# Hosts other than the mirror's own that a health check follows a redirect to: host names,
# "*.example.org" for its subdomains, "*" for any host. Redirects to the mirror's own host
# (and from http to https) need no entry; a redirect to a loopback, link-local or private
# address is refused anyway unless the mirror itself is on such an address.
#AllowRedirectHosts: []

# Disable a mirror when the files requested by its health check are missing (404): each missing
# file is dropped from the mirror and another is tried; three missing in one check disable it.
#DisableOnMissingFile: false

# Extra options of the rsync that lists a mirror, by mirror name; "*" is for every mirror
# without its own entry (an empty list turns them off for one mirror). Only options that
# change the listing are accepted: --copy-links (-L), --copy-unsafe-links, --safe-links,
# --copy-dirlinks (-k), --no-links, --no-implied-dirs, --ipv4 (-4), --ipv6 (-6), and
# --exclude=, --include=, --timeout=, --contimeout=, --bwlimit=, --address=, --protocol=
# (with their value, as one item). Every node that scans needs the same entries. Example:
#   RsyncOptions:
#     "*": [--copy-unsafe-links]
#     old-mirror: []
#RsyncOptions: {}

## Mirror selection

# How far around the closest mirror other mirrors are still candidates, as a multiple
# of its distance (more than 0).
#WeightDistributionRange: 1.5

# Path prefixes under which a mirror may serve an older copy of a file (its size is then
# not compared) if that copy is at most Minutes older than the local one. Prefix must
# start with '/'; an empty Prefix matches every file. Newer: true (not in the Go
# Mirrorbits, which ignores it) also accepts a copy newer than the local one, by any amount,
# if it has the local size: mirrors that sync on their own, without keeping the times.
# Example:
#   AllowOutdatedFiles:
#     - Prefix: /dists/
#       Minutes: 60
#     - Prefix: /releases/
#       Minutes: 0
#       Newer: true
#AllowOutdatedFiles: []

# Repository generations: index files (glob patterns relative to the repository; '*' within
# a directory name, '**' any number of directories; the last part is the file's own name).
# A file under an index's directory is sent only to mirrors whose copy of that index is the
# origin's (same size and time), when such a mirror serves every client: a client that got
# InRelease from one mirror no longer gets Packages of another generation from another
# ("Hash Sum mismatch"). Empty: off. See docs/freshness.md. Example:
#   GenerationIndexes: ["dists/*/InRelease", "dists/*/Release", "**/repodata/repomd.xml"]
#GenerationIndexes: []

# Servers used when no mirror can serve a file. A URL without a scheme serves both
# HTTP and HTTPS clients. CountryCode is two letters (ISO 3166-1; several separated by
# spaces), ContinentCode one of AF, AN, AS, EU, NA, OC, SA. Example:
#   Fallbacks:
#     - URL: https://fallback.example.org/pub/
#       CountryCode: FR
#       ContinentCode: EU
#Fallbacks: []

## Statistics and exports

# Days of daily download counters, and months of monthly ones, kept in Redis; older ones
# are deleted a few hundred at a time. Yearly and total counters are always kept.
# 0: keep forever.
#StatsRetention: {Days: 0, Months: 0}

# File the daemon keeps holding the Mirmon mirror list (the lines of
# "mirrorbits-ctl export mirmon"), replaced at once whenever a mirror changes. Empty: none.
#MirmonExportFile: ""

## Metrics

# Address of the Prometheus metrics (text exposition at /metrics): host:port (e.g.
# "127.0.0.1:9180") or unix:/path. Empty: none. Keep it on loopback or a private network
# (it asks for no password). See docs/metrics.md.
#MetricsListenAddress: ""

## Command-line client

# Address the mirrorbits command-line client connects to (RPC).
#RPCListenAddress: "localhost:3390"

# Password the command-line client must give; empty: none (then keep RPCListenAddress on
# localhost or a UNIX socket).
#RPCPassword: ""

# TLS for remote administration over TCP: the daemon's certificate (PEM, chain after it),
# its key (empty: in the certificate's file), and the CA whose certificates clients must
# present (mirrorbits-ctl -tls-ca, -tls-cert, -tls-key). All empty: no TLS.
#RPCTLSCertificate: ""
#RPCTLSKey: ""
#RPCTLSClientCA: ""

# Seconds a control connection may stay idle (no command running) once it gave the right
# password; before that it has 10 seconds. mirrorbits-ctl connects again when it needs to.
#RPCIdleTimeout: 300
"""

# The same service as `twistd mirrorbits`, for `twistd -ny mirrorbits.tac`.
# The configuration path comes from the MIRRORBITS_CONFIG environment variable;
# MIRRORBITS_REPOSITORY may name a directory to serve on the embedded default.
import os

from twisted.application.service import Application

from mirrorbits.tap import Options, makeService

_arguments = []
if os.environ.get("MIRRORBITS_CONFIG"):
    _arguments += ["--config", os.environ["MIRRORBITS_CONFIG"]]
if os.environ.get("MIRRORBITS_REPOSITORY"):
    _arguments += ["--repository", os.environ["MIRRORBITS_REPOSITORY"]]
_options = Options()
_options.parseOptions(_arguments)

application = Application("mirrorbits")
makeService(_options).setServiceParent(application)

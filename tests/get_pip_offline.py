"""Stand-in for get-pip.py, installed by scripts/bootstrap.sh where ansible-test looks for its cache.

ansible-test bootstraps pip in each sanity venv by downloading get-pip.py from a host that is not
reachable from our CI. This does the same job with what Python ships: ensurepip, then pip itself
installs the requested packages (e.g. pip==24.2) through this machine's normal pip configuration.
"""
import ensurepip
import os
import subprocess
import sys

# ensurepip sets PIP_CONFIG_FILE=/dev/null in os.environ; keep the caller's environment so the
# follow-up install sees the machine's index and certificate settings.
environment = dict(os.environ)
ensurepip.bootstrap(upgrade=True)
# get-pip's own flags have no pip-install equivalent; everything else is passed through.
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
if args:
    sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + args, env=environment))

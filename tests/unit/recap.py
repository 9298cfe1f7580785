"""Read ansible-playbook's PLAY RECAP exactly: changed=1 must not match changed=10."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

_HOST_LINE = re.compile(r"^(\S+)\s*:\s*ok=\d+\s+changed=(\d+)\s", re.M)


def changed_per_host(output):
    """{host: changed count} from the last PLAY RECAP in an ansible-playbook output."""
    recap = output[output.rindex("PLAY RECAP"):]
    counts = dict((host, int(n)) for host, n in _HOST_LINE.findall(recap))
    assert counts, "no host lines in the PLAY RECAP:\n" + recap
    return counts

"""``python -m geofm_core.cli``: the ``geofm`` command."""

from geofm_core.cli import _entry

_entry()

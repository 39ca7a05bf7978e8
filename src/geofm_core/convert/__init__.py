"""Config converters: other frameworks' configs to geofm YAML (``geofm convert``).

Pure YAML work: nothing here imports torch.
"""

from __future__ import annotations

__all__: list[str] = []

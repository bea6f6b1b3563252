"""The typed validator now lives one layer down, in `wsovvis.utils.schema` (the modeling package uses
it too); this module re-exports it for the engine and for existing imports."""

from wsovvis.utils.schema import closest, flatten, from_dict, to_dict, unknown_key_message

__all__ = ["closest", "flatten", "from_dict", "to_dict", "unknown_key_message"]

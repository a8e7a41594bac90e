"""DICOM de-identification after the PS3.15 Basic Application Level Confidentiality Profile.

- :func:`deidentify_tree`: a whole folder tree, resumable, with a report (``medvl deid IN OUT``).
- :func:`deidentify_dataset`: one pydicom dataset, in place.
- :func:`load_key` / :class:`KeyedHasher`: the secret key and the keyed UIDs, pseudonyms and date shifts.
- :func:`load_profile`: Table E.1-1 as data (``basic_profile.csv``).
- :func:`burned_in_reason`: why an image may carry burned-in text (it is then quarantined).
"""

from governance.deid.burned_in import burned_in_reason
from governance.deid.dataset import DeidCounts, deidentify_dataset
from governance.deid.errors import DeidConfigError, DeidError, DeidFileError
from governance.deid.files import process_file
from governance.deid.keys import KeyedHasher, load_key
from governance.deid.outcome import FileOutcome
from governance.deid.profile import Action, Profile, Rule, load_profile
from governance.deid.report import TreeSummary
from governance.deid.tree import deidentify_tree

__all__ = [
    "Action",
    "DeidConfigError",
    "DeidCounts",
    "DeidError",
    "DeidFileError",
    "FileOutcome",
    "KeyedHasher",
    "Profile",
    "Rule",
    "TreeSummary",
    "burned_in_reason",
    "deidentify_dataset",
    "deidentify_tree",
    "load_key",
    "load_profile",
    "process_file",
]

"""Perceptual fingerprints every party computes and compares identically (numpy, SciPy)."""

from .dct import DIHEDRAL_ORDER, dct256, dihedral_hashes
from .distance import as_matrix, hamming, hamming_many, hamming_matrix
from .information import LOW_INFORMATION_THRESHOLD, information_score, is_low_information
from .kinds import DCT64_V2, DCT256_V2, KINDS, KP64_V1, FingerprintError, FingerprintKind, get_kind, validate

__all__ = [
    "DCT64_V2",
    "DCT256_V2",
    "KP64_V1",
    "DIHEDRAL_ORDER",
    "KINDS",
    "LOW_INFORMATION_THRESHOLD",
    "FingerprintError",
    "FingerprintKind",
    "as_matrix",
    "dct256",
    "dihedral_hashes",
    "get_kind",
    "hamming",
    "hamming_many",
    "hamming_matrix",
    "information_score",
    "is_low_information",
    "validate",
]

"""Offline model zoo: small models whose weights ship inside the package."""

from dreamlab.models.zoo.digits import (
    DIGITS_MEAN,
    DIGITS_STD,
    DigitsJudge,
    LeNetDigits,
    digits_judge,
    lenet_digits,
    load_digits_split,
)

__all__ = [
    "DIGITS_MEAN",
    "DIGITS_STD",
    "DigitsJudge",
    "LeNetDigits",
    "digits_judge",
    "lenet_digits",
    "load_digits_split",
]

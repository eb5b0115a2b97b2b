"""The only code that reads or writes tables."""

from featurehouse.io.lakehouse import Lakehouse

__all__ = ["Lakehouse"]

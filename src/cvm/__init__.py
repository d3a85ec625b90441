"""cvm: Customer Value Management.

An integrated customer store, per-customer features, realized value and value-based
segmentation, from raw transactions. See the README for the command line and
``docs/`` for the Python API.
"""

__version__ = "0.1.0"

from cvm.config import Settings, load_settings
from cvm.errors import CVMError
from cvm.store import Store

__all__ = ["CVMError", "Settings", "Store", "__version__", "load_settings"]

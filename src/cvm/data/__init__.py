"""Bundled datasets and the synthetic relationship-data generator.

The Parquet files here are real, public transaction data (see ``README.md`` in this
package for their licences). :mod:`cvm.data.synthetic` generates labelled synthetic
interactions, surveys, referrals and identities for their customers.
"""

from cvm.data.synthetic import (
    SyntheticData,
    generate_relationship_data,
    online_retail_transactions,
    write_synthetic,
)

__all__ = [
    "SyntheticData",
    "generate_relationship_data",
    "online_retail_transactions",
    "write_synthetic",
]

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
    "ONLINE_RETAIL_NON_PRODUCTS",
    "SyntheticData",
    "generate_relationship_data",
    "online_retail_transactions",
    "write_synthetic",
]

#: Online Retail's stock codes that are not products: postage, manual lines, fees,
#: discounts, samples (excluded from cross-sell by the demo's configuration).
ONLINE_RETAIL_NON_PRODUCTS: tuple[str, ...] = (
    "POST",
    "DOT",
    "C2",
    "M",
    "D",
    "S",
    "B",
    "CRUK",
    "PADS",
    "BANK CHARGES",
    "AMAZONFEE",
    "GIFT_*",
)

"""Python functions a ``--tools`` file names (``tests.support.shop_tools:stock``), as a company's would be."""

STOCK = {"TB-1": 3, "RB-2": 12}


def stock(sku: str) -> dict:
    if sku not in STOCK:
        raise KeyError(f"unknown sku {sku}")
    return {"sku": sku, "in_stock": STOCK[sku], "reference": "RSV4X9K2"}


def label(parcel: str, labels: list) -> dict:
    return {"parcel": parcel, "labels": len(labels)}

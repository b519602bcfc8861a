ORDERS = {"7": "tea", "8": "cake"}

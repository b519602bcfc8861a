WHO = "orders"

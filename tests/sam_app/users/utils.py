WHO = "users"

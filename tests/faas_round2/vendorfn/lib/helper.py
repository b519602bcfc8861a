WHO = "vendorfn"

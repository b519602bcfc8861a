VERSION = "one"  # the reload test rewrites this line

"""Native shared libraries through the original FlexiLib C interface (`include/flexilib.h`)."""

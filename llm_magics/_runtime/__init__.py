"""The private loop thread, the HTTP pool, timeouts, the retry policy and the one
boundary where transport and HTTP errors become the package's errors."""

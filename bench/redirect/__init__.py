"""The redirect benchmark: full redirect path against a bare twisted.web 302."""

"""What the host tells, and how long graylink waits for it: filesystem kinds and mounts, calls and HTTP
requests under a deadline.

Imports no other graylink package (only the shared values of ``graylink`` itself); every package may import it.
"""

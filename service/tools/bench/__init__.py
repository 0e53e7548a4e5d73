"""`pinpoint bench`: drive a real server with wrk and compare every figure with the in-process limit."""

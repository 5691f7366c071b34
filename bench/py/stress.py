"""The slides' busy loop ("Benchmark 2"), from the talk's own stress.py, in Python 3."""


def stress():
    def rec(n):
        if n:
            return rec(n - 1)

    for i in range(100):
        rec(100)

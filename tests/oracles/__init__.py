"""Reference implementations the equality tests pin the package against: plain loops and a plain script, kept
only for the tests (the package never imports them; the benchmark's plain script does)."""

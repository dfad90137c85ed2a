"""sigforge's tests: ``unit/`` mirrors the packages, ``e2e/`` runs whole chains, ``support/`` holds fixtures and
fakes, ``oracles/`` the reference implementations that equality tests pin the package against."""

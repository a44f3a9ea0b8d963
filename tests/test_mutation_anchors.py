"""scripts/mutations stays runnable: each deliberate bug still finds the code it mutates.

A refactor that moves the mutated line would otherwise leave a mutation that can no longer
be applied, and the suite's claims unproven, without anyone noticing until the next run.
"""

from __future__ import annotations

import sys
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader
from types import ModuleType
from typing import Any

import pytest

from tests.support import ROOT


def _mutations() -> ModuleType:
    loader = SourceFileLoader("mutations", str(ROOT / "scripts" / "mutations"))
    spec = spec_from_loader("mutations", loader)
    assert spec is not None
    module = module_from_spec(spec)
    sys.modules["mutations"] = module  # its dataclasses look their module up there
    loader.exec_module(module)
    return module


MUTATIONS = _mutations().MUTATIONS


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[mutation.id for mutation in MUTATIONS])
def test_each_mutation_applies_once_and_names_existing_tests(mutation: Any) -> None:
    source = (ROOT / mutation.path).read_text()
    assert source.count(mutation.old) == 1, f"mutation {mutation.id}: its anchor moved"
    for test in mutation.tests:
        path, _, name = test.partition("::")
        assert (ROOT / path).is_file(), test
        if name:  # else the whole file is named
            assert f"def {name.split('[')[0]}(" in (ROOT / path).read_text(), test

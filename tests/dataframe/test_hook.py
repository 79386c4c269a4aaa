"""DataFrame.llm / Series.llm appear without ``import llm_magics`` importing pandas.

Each test runs in a fresh interpreter, because the whole point is import order.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str, *, path: Path | None = None) -> str:
    env_path = [str(path)] if path else []
    prelude = f"import sys; sys.path[:0] = {[*env_path, str(ROOT)]!r}\n"
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_import_llm_magics_then_pandas_registers_the_accessors_on_pandas_import() -> None:
    out = run_python(
        """
        import llm_magics, llm_magics.dataframe.hook as hook
        assert "pandas" not in sys.modules, "import llm_magics imported pandas"
        assert not hook.is_registered()
        import pandas as pd
        from llm_magics.dataframe.accessor import DataFrameLLM, SeriesLLM
        assert hook.is_registered()
        assert isinstance(pd.DataFrame({"a": [1]}).llm, DataFrameLLM)
        assert isinstance(pd.Series([1]).llm, SeriesLLM)
        # The hook is gone, and pandas kept its own loader.
        assert not any(isinstance(f, hook._PandasFinder) for f in sys.meta_path)
        assert type(pd.__loader__).__name__ == "SourceFileLoader", pd.__loader__
        assert pd.__spec__.loader is pd.__loader__
        print("ok")
        """
    )
    assert out.strip() == "ok"


def test_import_pandas_then_llm_magics_registers_at_once() -> None:
    out = run_python(
        """
        import pandas as pd
        import llm_magics, llm_magics.dataframe.hook as hook
        assert hook.is_registered()
        assert not any(isinstance(f, hook._PandasFinder) for f in sys.meta_path)
        print(type(pd.DataFrame({"a": [1]}).llm).__name__, type(pd.Series([1]).llm).__name__)
        """
    )
    assert out.split() == ["DataFrameLLM", "SeriesLLM"]


def test_registration_is_idempotent_and_warning_free() -> None:
    # -W error: a second registration would make pandas warn about overriding "llm".
    out = run_python(
        """
        import llm_magics, llm_magics.dataframe.hook as hook
        hook.install(); hook.install()
        assert sum(isinstance(f, hook._PandasFinder) for f in sys.meta_path) == 1
        import pandas as pd
        hook.install(); hook._register(pd)
        from llm_magics.dataframe import register
        register()
        print(type(pd.DataFrame().llm).__name__)
        """
    )
    assert out.strip() == "DataFrameLLM"


def test_importing_llm_magics_does_not_import_the_client_stack_on_pandas_import() -> None:
    out = run_python(
        """
        import llm_magics, pandas
        print("httpx2" in sys.modules, "llm_magics.dataframe.accessor" in sys.modules)
        pandas.DataFrame().llm
        print("llm_magics.dataframe.accessor" in sys.modules)
        """
    )
    assert out.split() == ["False", "False", "True"]


def test_a_failing_registration_never_breaks_the_pandas_import() -> None:
    out = run_python(
        """
        import logging
        logging.basicConfig(stream=sys.stdout, level=logging.WARNING, format="%(message)s")
        import llm_magics, llm_magics.dataframe.hook as hook

        def broken(module):
            raise RuntimeError("boom")

        hook._register = broken
        import pandas as pd
        print("imported", pd.DataFrame({"a": [1, 2]}).shape)
        """
    )
    assert "imported (2, 1)" in out
    assert "registering the pandas accessors failed" in out


def test_accessors_register_once_when_threads_import_pandas_together() -> None:
    out = run_python(
        """
        import threading
        import llm_magics, llm_magics.dataframe.hook as hook
        calls = []
        real = hook._register
        hook._register = lambda m: (calls.append(1), real(m))
        errors = []

        def worker():
            try:
                import pandas
                pandas.DataFrame().llm
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads: t.start()
        for t in threads: t.join()
        print(len(errors), len(calls), hook.is_registered())
        """
    )
    assert out.split() == ["0", "1", "True"]


FAKE_PANDAS = """
import os
FLAG = os.environ["FAKE_PANDAS_FAIL_ONCE"]
if os.path.exists(FLAG):
    os.remove(FLAG)
    raise ImportError("fake pandas: first import fails")

class DataFrame:
    pass

class Series:
    pass

def _register(cls, name):
    def decorate(accessor):
        setattr(cls, name, property(lambda self: accessor(self)))
        return accessor
    return decorate

class _Extensions:
    register_dataframe_accessor = staticmethod(lambda name: _register(DataFrame, name))
    register_series_accessor = staticmethod(lambda name: _register(Series, name))

class api:
    extensions = _Extensions
"""


def test_a_failed_pandas_import_leaves_the_hook_for_the_next_attempt(tmp_path: Path) -> None:
    package = tmp_path / "site" / "pandas"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(FAKE_PANDAS)
    flag = tmp_path / "fail-once"
    flag.write_text("")
    out = run_python(
        f"""
        import os
        os.environ["FAKE_PANDAS_FAIL_ONCE"] = {str(flag)!r}
        import llm_magics, llm_magics.dataframe.hook as hook
        try:
            import pandas
        except ImportError as exc:
            print("first:", exc)
        assert any(isinstance(f, hook._PandasFinder) for f in sys.meta_path)
        import pandas
        print("second:", pandas.__file__.endswith("site/pandas/__init__.py"), hook.is_registered())
        print(hasattr(pandas.DataFrame, "llm"), hasattr(pandas.Series, "llm"))
        """,
        path=tmp_path / "site",
    )
    lines = out.strip().splitlines()
    assert lines[0] == "first: fake pandas: first import fails"
    assert lines[1] == "second: True True"
    assert lines[2] == "True True"

"""The source scanner behind test_env_example: it must see every form of a read, and no writes."""

import textwrap

from tests.deploy.env_reads import reads_in_package, reads_in_source


def names(source: str) -> list[str | None]:
    return [read.name for read in reads_in_source(textwrap.dedent(source))]


def test_every_reading_form_is_found():
    source = """
        import os
        import os as system
        from os import environ as env, getenv as fetch

        a = os.environ["A"]
        b = os.environ.get("B", "x")
        c = os.getenv("C")
        d = system.environ.setdefault("D", "1")
        e = env["E"]
        f = fetch("F")
        g = "G" in os.environ
        h = env.pop("H", None)
    """
    assert names(source) == ["A", "B", "C", "D", "E", "F", "G", "H"]


def test_writes_deletes_and_lookalikes_are_not_reads():
    source = """
        import os
        os.environ["WRITTEN"] = "1"
        del os.environ["DELETED"]
        settings = {"environ": {}}
        settings["environ"].get("NOT_ENV")
        config.getenv("NOT_OS")
        # os.environ["IN_A_COMMENT"]
        text = 'os.getenv("IN_A_STRING")'
        child = dict(os.environ)
    """
    assert names(source) == []


def test_a_read_with_a_computed_key_is_reported_without_a_name():
    source = """
        import os
        def read(key):
            return os.environ[key] + os.getenv("PREFIX_" + key, "")
    """
    reads = reads_in_source(textwrap.dedent(source), "bot/example.py")
    assert [(r.name, r.where()) for r in reads] == [
        (None, "bot/example.py:4"),
        (None, "bot/example.py:4"),
    ]


def test_an_import_inside_a_function_still_counts():
    source = """
        def late():
            from os import getenv
            return getenv("LATE")
    """
    assert names(source) == ["LATE"]


def test_a_package_scan_names_each_file_relative_to_the_package_parent(tmp_path):
    package = tmp_path / "pkg"
    (package / "inner").mkdir(parents=True)
    (package / "__init__.py").write_text("import os\nTOKEN = os.getenv('TOKEN')\n")
    (package / "inner" / "mod.py").write_text("from os import environ\n\nX = environ['X']\n")
    reads = reads_in_package(package)
    assert [(r.name, r.where()) for r in reads] == [
        ("TOKEN", "pkg/__init__.py:2"),
        ("X", "pkg/inner/mod.py:3"),
    ]

"""Stage ``report_table``: one table as an HTML page of the report, with its caption
(:func:`workflow.lib.reporting.pages.write_table_page`).

``python -m workflow.scripts.report_table --name table1 --sources tables/table1.md tables/table1.csv
--out results/NAME/report/tables/table1.html``
"""

from __future__ import annotations

import argparse
from pathlib import Path

from workflow.lib.reporting.pages import write_table_page


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True)
    parser.add_argument("--sources", type=Path, nargs="+", required=True, help="the table's .md and .csv files")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    write_table_page(args.name, args.sources, args.out)


if __name__ == "__main__":
    main()

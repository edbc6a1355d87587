"""The node's internal audit report: what an archivist opens to review duplicates, storage
cost, rights and unreadable files. It reads the catalogue (and, for previews, the node's own
images) and writes report files; it never deletes or moves anything."""

from .html import write_html
from .model import Report, build_report
from .premis import write_premis
from .tables import write_csv, write_json, write_masters, write_plan

__all__ = ["Report", "build_report", "write_csv", "write_html", "write_json", "write_masters", "write_plan", "write_premis"]

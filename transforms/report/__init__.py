"""The dataset report (``sigforge report OUT``): overview, split comparison and each recipe's own figures.

Nothing here imports Beam: files are read and written through an injected file API (``ReportFiles``), and figures
are drawn with matplotlib's Agg canvas. See docs/ARCHITECTURE.md section 8.
"""

"""The offline pipeline-audit report (``hygiene replay`` writes it).

Entry point: ``processor.report.html.render_report``. Nothing is imported
here so that the chart helpers stay usable without loading the replay stack.
"""

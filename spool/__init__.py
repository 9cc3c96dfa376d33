"""Spool: durable video and blog-publishing pipelines on Temporal."""

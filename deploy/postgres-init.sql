-- Spool's own database beside Temporal's, on the same PostgreSQL server.
CREATE USER spool WITH PASSWORD 'spool';
CREATE DATABASE spool OWNER spool;

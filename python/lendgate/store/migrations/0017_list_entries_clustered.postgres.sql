-- Nothing to do on PostgreSQL: its tables are heaps with separate indexes (the SQLite
-- migration of this number makes list_entries a clustered WITHOUT ROWID table).
SELECT 1;

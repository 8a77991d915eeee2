-- The role the service connects with: it does not own the tables, so it cannot disable the audit
-- table's append-only triggers or drop it (migrations run as the owner, `grin`).
CREATE ROLE grin_app LOGIN PASSWORD 'grin_app';
GRANT CONNECT ON DATABASE grin TO grin_app;
GRANT USAGE ON SCHEMA public TO grin_app;
-- Tables and sequences the owner creates later (every migration) are granted as they appear.
ALTER DEFAULT PRIVILEGES FOR ROLE grin IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO grin_app;
ALTER DEFAULT PRIVILEGES FOR ROLE grin IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO grin_app;

-- Fixture schema for tests/corpus/everyday_pg.yaml (false-positive corpus).
-- Idempotent: drops and recreates the `everyday` schema. Creates no functions.
-- Load with: psql -h 127.0.0.1 -U postgres -d test -v ON_ERROR_STOP=1 -f everyday_schema.sql

DROP SCHEMA IF EXISTS everyday CASCADE;
CREATE SCHEMA everyday;

CREATE TYPE everyday.order_status AS ENUM ('pending', 'paid', 'shipped', 'cancelled');

CREATE SEQUENCE everyday.invoice_number_seq START 1000;

CREATE TABLE everyday.users (
    id          bigserial PRIMARY KEY,
    email       text NOT NULL UNIQUE,
    name        text NOT NULL,
    is_active   boolean NOT NULL DEFAULT true,
    roles       text[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    last_login  timestamptz
);

CREATE TABLE everyday.accounts (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES everyday.users (id),
    balance     numeric(12, 2) NOT NULL DEFAULT 0,
    currency    char(3) NOT NULL DEFAULT 'EUR',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE everyday.products (
    id          bigserial PRIMARY KEY,
    sku         text NOT NULL UNIQUE,
    name        text NOT NULL,
    price       numeric(10, 2) NOT NULL,
    stock       integer NOT NULL DEFAULT 0,
    attributes  jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE everyday.orders (
    id              bigserial PRIMARY KEY,
    user_id         bigint NOT NULL REFERENCES everyday.users (id),
    status          everyday.order_status NOT NULL DEFAULT 'pending',
    total           numeric(12, 2) NOT NULL DEFAULT 0,
    invoice_number  bigint,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE everyday.order_items (
    id          bigserial PRIMARY KEY,
    order_id    bigint NOT NULL REFERENCES everyday.orders (id) ON DELETE CASCADE,
    product_id  bigint NOT NULL REFERENCES everyday.products (id),
    quantity    integer NOT NULL CHECK (quantity > 0),
    unit_price  numeric(10, 2) NOT NULL
);

CREATE TABLE everyday.events (
    id          bigserial PRIMARY KEY,
    user_id     bigint REFERENCES everyday.users (id),
    kind        text NOT NULL,
    payload     jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE everyday.tags (
    id    serial PRIMARY KEY,
    name  text NOT NULL UNIQUE
);

CREATE TABLE everyday.product_tags (
    product_id  bigint NOT NULL REFERENCES everyday.products (id) ON DELETE CASCADE,
    tag_id      integer NOT NULL REFERENCES everyday.tags (id) ON DELETE CASCADE,
    PRIMARY KEY (product_id, tag_id)
);

CREATE TABLE everyday.audit_log (
    id          bigserial PRIMARY KEY,
    actor_id    bigint,
    action      text NOT NULL,
    entity      text NOT NULL,
    entity_id   bigint,
    details     jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- A queue table of the kind job runners poll with FOR UPDATE SKIP LOCKED.
CREATE TABLE everyday.jobs (
    id          bigserial PRIMARY KEY,
    queue       text NOT NULL DEFAULT 'default',
    payload     jsonb NOT NULL DEFAULT '{}',
    attempts    integer NOT NULL DEFAULT 0,
    run_at      timestamptz NOT NULL DEFAULT now(),
    locked_at   timestamptz,
    finished_at timestamptz
);

-- Bookkeeping tables that migration tools read (Rails, Django, Alembic, Flyway).
CREATE TABLE everyday.schema_migrations (
    version varchar NOT NULL PRIMARY KEY
);

CREATE TABLE everyday.ar_internal_metadata (
    key         varchar NOT NULL PRIMARY KEY,
    value       varchar,
    created_at  timestamp(6) NOT NULL,
    updated_at  timestamp(6) NOT NULL
);

CREATE TABLE everyday.django_migrations (
    id       bigserial PRIMARY KEY,
    app      varchar(255) NOT NULL,
    name     varchar(255) NOT NULL,
    applied  timestamptz NOT NULL
);

CREATE TABLE everyday.alembic_version (
    version_num varchar(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

CREATE TABLE everyday.flyway_schema_history (
    installed_rank  integer NOT NULL PRIMARY KEY,
    version         varchar(50),
    description     varchar(200) NOT NULL,
    type            varchar(20) NOT NULL,
    script          varchar(1000) NOT NULL,
    checksum        integer,
    installed_by    varchar(100) NOT NULL,
    installed_on    timestamp NOT NULL DEFAULT now(),
    execution_time  integer NOT NULL,
    success         boolean NOT NULL
);

CREATE INDEX orders_user_id_idx ON everyday.orders (user_id);
CREATE INDEX orders_created_at_idx ON everyday.orders (created_at);
CREATE INDEX order_items_order_id_idx ON everyday.order_items (order_id);
CREATE INDEX events_payload_gin_idx ON everyday.events USING gin (payload);
CREATE INDEX events_user_created_idx ON everyday.events (user_id, created_at DESC);
CREATE INDEX users_lower_email_idx ON everyday.users (lower(email));
CREATE INDEX jobs_pending_idx ON everyday.jobs (queue, run_at) WHERE finished_at IS NULL;

CREATE VIEW everyday.order_summaries AS
SELECT o.id AS order_id,
       u.email,
       o.status,
       count(oi.id) AS item_count,
       coalesce(sum(oi.quantity * oi.unit_price), 0) AS items_total,
       o.created_at
FROM everyday.orders o
JOIN everyday.users u ON u.id = o.user_id
LEFT JOIN everyday.order_items oi ON oi.order_id = o.id
GROUP BY o.id, u.email, o.status, o.created_at;

INSERT INTO everyday.users (id, email, name, is_active, roles, created_at, last_login) VALUES
    (1, 'alice@example.com', 'Alice', true,  '{admin,staff}', '2024-01-10 09:00:00+00', '2024-06-01 08:00:00+00'),
    (2, 'bob@example.com',   'Bob',   true,  '{staff}',       '2024-02-11 10:30:00+00', NULL),
    (3, 'carol@example.com', 'Carol', false, '{}',            '2024-03-12 11:45:00+00', '2024-05-20 17:10:00+00'),
    (4, 'dave@example.com',  'Dave',  true,  '{}',            '2024-04-01 12:00:00+00', NULL),
    (5, 'erin@example.com',  'Erin',  true,  '{staff}',       '2024-05-05 13:15:00+00', '2024-06-02 09:30:00+00');
SELECT setval('everyday.users_id_seq', 5);

INSERT INTO everyday.accounts (id, user_id, balance, currency) VALUES
    (1, 1, 120.50, 'EUR'),
    (2, 2,  15.00, 'EUR'),
    (3, 5, 300.00, 'USD');
SELECT setval('everyday.accounts_id_seq', 3);

INSERT INTO everyday.products (id, sku, name, price, stock, attributes) VALUES
    (1, 'SKU-001', 'Blue Mug',   9.90,  100, '{"color": "blue", "size": "M", "tags": ["kitchen"]}'),
    (2, 'SKU-002', 'Red Mug',    9.90,   40, '{"color": "red", "size": "M"}'),
    (3, 'SKU-003', 'Tea Pot',   34.00,   12, '{"color": "white", "material": "ceramic"}'),
    (4, 'SKU-004', 'Coffee 1kg', 18.50, 250, '{"origin": "Brazil", "roast": "dark"}');
SELECT setval('everyday.products_id_seq', 4);

INSERT INTO everyday.orders (id, user_id, status, total, invoice_number, created_at) VALUES
    (1, 1, 'paid',      29.70, 1000, '2024-05-01 10:00:00+00'),
    (2, 1, 'shipped',   34.00, 1001, '2024-05-15 14:00:00+00'),
    (3, 2, 'pending',   18.50, NULL, '2024-06-01 09:00:00+00'),
    (4, 5, 'cancelled',  9.90, NULL, '2023-12-24 18:00:00+00'),
    (5, 5, 'paid',      52.50, 1002, '2024-06-02 16:20:00+00');
SELECT setval('everyday.orders_id_seq', 5);
SELECT setval('everyday.invoice_number_seq', 1002);

INSERT INTO everyday.order_items (id, order_id, product_id, quantity, unit_price) VALUES
    (1, 1, 1, 2,  9.90),
    (2, 1, 2, 1,  9.90),
    (3, 2, 3, 1, 34.00),
    (4, 3, 4, 1, 18.50),
    (5, 4, 2, 1,  9.90),
    (6, 5, 3, 1, 34.00),
    (7, 5, 4, 1, 18.50);
SELECT setval('everyday.order_items_id_seq', 7);

INSERT INTO everyday.events (id, user_id, kind, payload, created_at) VALUES
    (1, 1, 'login',    '{"ip": "10.0.0.1", "agent": "firefox"}',              '2024-06-01 08:00:00+00'),
    (2, 1, 'checkout', '{"order_id": 2, "amount": 34.0, "items": [3]}',       '2024-05-15 14:00:00+00'),
    (3, 2, 'login',    '{"ip": "10.0.0.2", "agent": "curl"}',                 '2024-06-01 08:55:00+00'),
    (4, 5, 'checkout', '{"order_id": 5, "amount": 52.5, "items": [3, 4]}',    '2024-06-02 16:20:00+00'),
    (5, NULL, 'signup_failed', '{"email": "x@example.com", "reason": "bad"}', '2024-01-01 00:00:00+00');
SELECT setval('everyday.events_id_seq', 5);

INSERT INTO everyday.tags (id, name) VALUES (1, 'kitchen'), (2, 'gift'), (3, 'coffee');
SELECT setval('everyday.tags_id_seq', 3);

INSERT INTO everyday.product_tags (product_id, tag_id) VALUES (1, 1), (1, 2), (2, 1), (3, 1), (4, 3);

INSERT INTO everyday.audit_log (id, actor_id, action, entity, entity_id, details, created_at) VALUES
    (1, 1, 'update', 'orders', 2, '{"status": ["paid", "shipped"]}', '2024-05-16 09:00:00+00'),
    (2, 2, 'create', 'orders', 3, '{}',                              '2024-06-01 09:00:00+00'),
    (3, 1, 'login',  'users',  1, NULL,                              '2023-11-01 07:00:00+00');
SELECT setval('everyday.audit_log_id_seq', 3);

INSERT INTO everyday.jobs (id, queue, payload, run_at, finished_at) VALUES
    (1, 'default', '{"task": "send_email", "user_id": 1}', '2024-06-01 00:00:00+00', NULL),
    (2, 'default', '{"task": "send_email", "user_id": 2}', '2024-06-01 00:05:00+00', NULL),
    (3, 'reports', '{"task": "monthly"}',                  '2024-05-01 00:00:00+00', '2024-05-01 00:02:00+00');
SELECT setval('everyday.jobs_id_seq', 3);

INSERT INTO everyday.schema_migrations (version) VALUES ('20240101090000'), ('20240315120000');
INSERT INTO everyday.ar_internal_metadata (key, value, created_at, updated_at) VALUES
    ('environment', 'production', '2024-01-01 09:00:00', '2024-01-01 09:00:00');

INSERT INTO everyday.django_migrations (id, app, name, applied) VALUES
    (1, 'contenttypes', '0001_initial', '2024-01-01 09:00:00+00'),
    (2, 'shop', '0001_initial', '2024-01-01 09:00:01+00');
SELECT setval('everyday.django_migrations_id_seq', 2);

INSERT INTO everyday.alembic_version (version_num) VALUES ('3f2a1c9d8e7b');

INSERT INTO everyday.flyway_schema_history
    (installed_rank, version, description, type, script, checksum, installed_by, installed_on, execution_time, success) VALUES
    (1, '1', 'init', 'SQL', 'V1__init.sql', 123456789, 'postgres', '2024-01-01 09:00:00', 42, true),
    (2, '2', 'add events', 'SQL', 'V2__add_events.sql', -987654321, 'postgres', '2024-03-15 12:00:00', 17, true);

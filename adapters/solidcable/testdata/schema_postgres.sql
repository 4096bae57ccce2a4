-- solid_cable's lib/generators/solid_cable/install/templates/db/cable_schema.rb, as Active Record 8 creates it on PostgreSQL.
CREATE TABLE "solid_cable_messages" ("id" bigserial primary key, "channel" bytea NOT NULL, "payload" bytea NOT NULL, "created_at" timestamp(6) NOT NULL, "channel_hash" bigint NOT NULL);
CREATE INDEX "index_solid_cable_messages_on_channel" ON "solid_cable_messages" ("channel");
CREATE INDEX "index_solid_cable_messages_on_channel_hash" ON "solid_cable_messages" ("channel_hash");
CREATE INDEX "index_solid_cable_messages_on_created_at" ON "solid_cable_messages" ("created_at");

-- Devices over MQTT (issue #18): each device's broker credential. The password is shown once
-- (in the registration reply, or when the key exchange re-issues it) and stored only as its
-- sha-256 hash, like device keys; the embedded broker checks it here. With an external
-- broker (Mosquitto's dynamic security) the broker keeps its own salted hash, and this row
-- records that the device has a client there.
CREATE TABLE mqtt_credentials (
  uuid          text        PRIMARY KEY REFERENCES device_credentials (uuid) ON DELETE CASCADE,
  username      text        NOT NULL UNIQUE,
  password_hash bytea       NOT NULL,
  issued_at     timestamptz NOT NULL DEFAULT now()
);

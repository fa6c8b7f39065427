// Send data from an ESP32 (Arduino core) with HTTPClient and ArduinoJson 7.
//
// Readings are buffered with their own times while the network is down, and
// flushed in one request as a batch: [{"observed_at": <epoch ms>, "values": {...}}].
// Each batch carries an Idempotency-Key, kept until the batch is answered: a
// retry after a lost response is answered from the first commit, never
// stored twice.
//
// Not run by the test suite (no board). The requests it sends (a JSON array of
// readings with epoch-millisecond times, an Idempotency-Key, retries) are those
// the gateway tests and tests/function/openapi_test.ts send.
#include <ArduinoJson.h>
#include <HTTPClient.h>
#include <WiFi.h>
#include <WiFiClientSecure.h>
#include <time.h>

const char* WIFI_SSID = "your-wifi";
const char* WIFI_PASSWORD = "your-password";
const char* INGEST_URL = "https://<project-ref>.supabase.co/functions/v1/ingest-data";
const char* API_KEY = "tw_...";  // the API key of your datasource

const size_t MAX_BUFFERED = 64;       // readings kept while offline (oldest dropped beyond)
const uint32_t READ_EVERY_MS = 10000;  // one reading every 10 s

struct Reading {
  uint64_t observedAtMs;  // epoch milliseconds, from NTP
  float temperature;
  float rpm;
  float vibration;
};

Reading buffer[MAX_BUFFERED];
size_t buffered = 0;
String idempotencyKey;  // of the batch in flight; empty when none
size_t inFlight = 0;    // readings in that batch
uint32_t lastRead = 0;
uint32_t retryAt = 0;
uint32_t backoffMs = 1000;

uint64_t nowMs() {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  return (uint64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

String newIdempotencyKey() {
  char key[37];
  uint32_t r[4] = {esp_random(), esp_random(), esp_random(), esp_random()};
  snprintf(key, sizeof key, "%08x-%04x-4%03x-%04x-%04x%08x", (unsigned)r[0], (unsigned)(r[1] >> 16),
           (unsigned)(r[1] & 0xfff), (unsigned)((r[2] >> 16 & 0x3fff) | 0x8000), (unsigned)(r[2] & 0xffff),
           (unsigned)r[3]);
  return String(key);
}

void takeReading() {
  if (buffered == MAX_BUFFERED) {  // full: drop the oldest reading that is not in flight
    if (inFlight == MAX_BUFFERED) return;  // all in flight: drop this one
    memmove(&buffer[inFlight], &buffer[inFlight + 1], (MAX_BUFFERED - inFlight - 1) * sizeof(Reading));
    buffered--;
  }
  // Replace with your sensors.
  buffer[buffered++] = Reading{nowMs(), 42.5, 1500, 0.75};
}

// Sends the buffered readings as one batch; true when the server committed them.
bool flush() {
  if (buffered == 0 || WiFi.status() != WL_CONNECTED) return false;
  if (idempotencyKey.isEmpty()) {  // a new batch: freeze its readings and key
    inFlight = buffered;
    idempotencyKey = newIdempotencyKey();
  }
  JsonDocument doc;
  JsonArray readings = doc.to<JsonArray>();
  for (size_t i = 0; i < inFlight; i++) {
    JsonObject reading = readings.add<JsonObject>();
    reading["observed_at"] = buffer[i].observedAtMs;  // epoch milliseconds
    JsonObject values = reading["values"].to<JsonObject>();
    values["temperature"] = buffer[i].temperature;
    JsonObject motor = values["motor_stats"].to<JsonObject>();
    motor["rpm"] = buffer[i].rpm;
    motor["vibration"] = buffer[i].vibration;
  }
  String body;
  serializeJson(doc, body);

  WiFiClientSecure client;
  client.setInsecure();  // better: client.setCACert(<your project's root CA>)
  HTTPClient http;
  http.begin(client, INGEST_URL);
  http.addHeader("Content-Type", "application/json");
  http.addHeader("X-API-Key", API_KEY);
  http.addHeader("Idempotency-Key", idempotencyKey);
  const char* wanted[] = {"Retry-After"};
  http.collectHeaders(wanted, 1);
  int status = http.POST(body);
  String retryAfter = http.header("Retry-After");
  String answer = http.getString();
  http.end();

  if (status == 200) {  // committed (or a replay of the first commit): drop the batch
    memmove(&buffer[0], &buffer[inFlight], (buffered - inFlight) * sizeof(Reading));
    buffered -= inFlight;
    inFlight = 0;
    idempotencyKey = "";
    backoffMs = 1000;
    return true;
  }
  if (status == 429 || status == 503 || status == 409 || status == 500 || status < 0) {
    // Nothing stored, still in flight, or no answer: retry the same batch with the same key.
    uint32_t wait = retryAfter.length() ? retryAfter.toInt() * 1000 : backoffMs;
    retryAt = millis() + wait;
    backoffMs = backoffMs < 60000 ? backoffMs * 2 : 60000;
    return false;
  }
  // 4xx: the request is wrong and will stay wrong; its message says why. Drop the batch.
  Serial.printf("Refused (%d): %s\n", status, answer.c_str());
  memmove(&buffer[0], &buffer[inFlight], (buffered - inFlight) * sizeof(Reading));
  buffered -= inFlight;
  inFlight = 0;
  idempotencyKey = "";
  return false;
}

void setup() {
  Serial.begin(115200);
  WiFi.begin(WIFI_SSID, WIFI_PASSWORD);
  configTime(0, 0, "pool.ntp.org");  // times are sent in UTC epoch milliseconds
  while (time(nullptr) < 1700000000) delay(200);
}

void loop() {
  if (millis() - lastRead >= READ_EVERY_MS) {
    lastRead = millis();
    takeReading();
  }
  if ((int32_t)(millis() - retryAt) >= 0) flush();
  delay(50);
}

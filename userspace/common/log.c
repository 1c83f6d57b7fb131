// SPDX-License-Identifier: GPL-2.0-only
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "common/common.h"

static int log_level = -1;
static const char *log_prefix = "bulwark";
static enum bw_log_format log_format = BW_LOG_PLAIN;

void bw_log_set_format(enum bw_log_format f) { log_format = f; }

int bw_log_format_parse(const char *name)
{
	static const char *const names[] = { "plain", "logfmt", "json" };

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (!strcmp(name, names[i]))
			return (int)i;
	return -EINVAL;
}

/* Quote s for logfmt or JSON: backslash, quote and control characters escaped. */
static void quote(char *out, size_t n, const char *s)
{
	size_t o = 0;

	for (; *s && o + 7 < n; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else if (c < 0x20) {
			o += (size_t)snprintf(out + o, n - o, "\\u%04x", c);
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
}

void bw_log_set_level(enum bw_log_level level) { log_level = level; }
void bw_log_set_prefix(const char *prefix) { log_prefix = prefix; }

static int current_level(void)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };
	const char *env;

	if (log_level >= 0)
		return log_level;
	log_level = BW_LOG_INFO;
	env = getenv("BULWARK_LOG");
	for (size_t i = 0; env && i < ARRAY_SIZE(names); i++)
		if (!strcasecmp(env, names[i]))
			log_level = (int)i;
	return log_level;
}

void bw_log(enum bw_log_level level, const char *fmt, ...)
{
	static const char *const tags[] = { "debug", "info", "warning", "error" };
	static const char *const lv[] = { "debug", "info", "warn", "error" };
	char q[2200], ts[40];
	struct timespec now;
	struct tm tm;
	va_list ap;

	if ((int)level < current_level())
		return;
	/* One fprintf per line so concurrent writers do not interleave inside a line. */
	char line[1024];
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log_format == BW_LOG_PLAIN) {
		fprintf(stderr, "%s: %s: %s\n", log_prefix, tags[level], line);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	{
		size_t l = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(ts + l, sizeof(ts) - l, ".%03uZ", (unsigned)(now.tv_nsec / 1000000) % 1000u);
	}
	quote(q, sizeof(q), line);
	if (log_format == BW_LOG_JSON)
		fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"prog\":\"%s\",\"msg\":\"%s\"}\n", ts, lv[level],
			log_prefix, q);
	else
		fprintf(stderr, "ts=%s level=%s prog=%s msg=\"%s\"\n", ts, lv[level], log_prefix, q);
}

void bw_note(struct bw_notes *notes, const char *fmt, ...)
{
	va_list ap;

	if (!notes || notes->n >= BW_NOTES_MAX)
		return;
	va_start(ap, fmt);
	vsnprintf(notes->text[notes->n++], sizeof(notes->text[0]), fmt, ap);
	va_end(ap);
}

void bw_notes_log(struct bw_notes *notes)
{
	for (unsigned i = 0; notes && i < notes->n && i < BW_NOTES_MAX; i++)
		bw_log(BW_LOG_INFO, "%s", notes->text[i]);
	if (notes)
		notes->n = 0;
}

void bw_log_hook(void *ctx, enum bw_log_level level, const char *msg)
{
	(void)ctx;
	bw_log(level, "%s", msg);
}

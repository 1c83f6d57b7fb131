// SPDX-License-Identifier: GPL-2.0-only
#include <string.h>
#include <strings.h>
#include "common/common.h"

static int log_level = -1;
static const char *log_prefix = "bulwark";

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
	va_list ap;

	if ((int)level < current_level())
		return;
	/* One fprintf per line so concurrent writers do not interleave inside a line. */
	char line[1024];
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s: %s\n", log_prefix, tags[level], line);
}

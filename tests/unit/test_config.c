/* test_config.c — the option table: defaults, bounds, precedence, file parsing, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"

static enum parley_err load(struct config *cfg, char *err, size_t errlen, int argc, ...)
{
    char *argv[32];
    va_list ap;
    va_start(ap, argc);
    argv[0] = (char *)"parleyd";
    for (int i = 1; i < argc; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    FILE *f = fmemopen(err, errlen, "w");
    bool help = false;
    enum parley_err rc = config_load(cfg, argc, argv, f, &help);
    fclose(f);
    return rc;
}

static void defaults(void **state)
{
    (void)state;
    struct config cfg;
    char err[512] = "";
    assert_int_equal(load(&cfg, err, sizeof err, 1), PARLEY_OK);
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_int_equal(cfg.listen_port, 8080);
    assert_string_equal(cfg.data_dir, "var");
    assert_int_equal(cfg.session_ttl_s, 30 * 86400);
    assert_int_equal(cfg.queue_ttl_s, 15 * 86400);
    assert_int_equal(cfg.max_devices, 6);
    assert_false(cfg.insecure_behind_proxy);
}

static void flags_and_bounds(void **state)
{
    (void)state;
    struct config cfg;
    char err[512] = "";
    assert_int_equal(load(&cfg, err, sizeof err, 5, "--listen", "[::1]:9000", "--queue-ttl=90s",
                          "--insecure-behind-proxy"), PARLEY_OK);
    assert_string_equal(cfg.listen_host, "::1");
    assert_int_equal(cfg.listen_port, 9000);
    assert_int_equal(cfg.queue_ttl_s, 90);
    assert_true(cfg.insecure_behind_proxy);

    memset(err, 0, sizeof err);
    assert_int_equal(load(&cfg, err, sizeof err, 3, "--queue-ttl", "16d"), PARLEY_ERR_INVAL);
    assert_non_null(strstr(err, "out of range"));
    memset(err, 0, sizeof err);
    assert_int_equal(load(&cfg, err, sizeof err, 3, "--max-devices", "7x"), PARLEY_ERR_INVAL);
    assert_non_null(strstr(err, "expected an integer"));
    memset(err, 0, sizeof err);
    assert_int_equal(load(&cfg, err, sizeof err, 2, "--threads"), PARLEY_ERR_INVAL);
    assert_non_null(strstr(err, "missing value"));
    memset(err, 0, sizeof err);
    assert_int_equal(load(&cfg, err, sizeof err, 3, "--listen", "host:99999"), PARLEY_ERR_INVAL);
    memset(err, 0, sizeof err);
    assert_int_equal(load(&cfg, err, sizeof err, 3, "--session-ttl", "9999999999999999999d"),
                     PARLEY_ERR_INVAL);
    memset(err, 0, sizeof err);
    assert_int_equal(load(&cfg, err, sizeof err, 3, "--queue-seal", "aes"), PARLEY_ERR_INVAL);
    assert_non_null(strstr(err, "queue_seal: expected auto or xchacha20"));
    assert_int_equal(load(&cfg, err, sizeof err, 3, "--queue-seal", "xchacha20"), PARLEY_OK);
    assert_string_equal(cfg.queue_seal, "xchacha20");
}

static void file_env_flag_precedence(void **state)
{
    (void)state;
    char path[] = "/tmp/parley-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "# test\n threads = 3 \nmax_devices = 4\nlog_level = \"warn\"\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);

    struct config cfg;
    char err[512] = "";
    setenv("PARLEYD_MAX_DEVICES", "5", 1);
    assert_int_equal(load(&cfg, err, sizeof err, 5, "--config", path, "--threads", "2"),
                     PARLEY_OK);
    assert_int_equal(cfg.threads, 2);     /* flag beats file */
    assert_int_equal(cfg.max_devices, 5); /* env beats file */
    assert_string_equal(cfg.log_level, "warn");
    unsetenv("PARLEYD_MAX_DEVICES");

    fd = open(path, O_WRONLY | O_TRUNC);
    const char *bad = "threads = 2\nnot a pair\n";
    assert_int_equal(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
    close(fd);
    memset(err, 0, sizeof err);
    assert_int_equal(load(&cfg, err, sizeof err, 3, "--config", path), PARLEY_ERR_INVAL);
    assert_non_null(strstr(err, ":2: expected"));
    unlink(path);
}

static void example_config_parses(void **state)
{
    (void)state;
    char path[] = "/tmp/parley-example-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    config_print_example(f);
    fclose(f);
    struct config cfg;
    char err[512] = "";
    assert_int_equal(load(&cfg, err, sizeof err, 3, "--config", path), PARLEY_OK);
    assert_int_equal(cfg.queue_ttl_s, 15 * 86400);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults),
        cmocka_unit_test(flags_and_bounds),
        cmocka_unit_test(file_env_flag_precedence),
        cmocka_unit_test(example_config_parses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

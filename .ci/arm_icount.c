/* Counts the guest instructions a qemu-user process executes. Each getppid system call (aarch64: 173)
 * the program makes is a mark: at exit, out=FILE gets the count at every mark, one per line. */
#include <stdio.h>
#include <string.h>
#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;
static uint64_t executed;
static char out_path[4096];
static uint64_t marks[4096];
static size_t n_marks;
#define GETPPID 173

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu, int64_t num, uint64_t a1, uint64_t a2,
                       uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8)
{
    if (num == GETPPID && n_marks < sizeof marks / sizeof marks[0]) {
        marks[n_marks++] = executed;
    }
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &executed,
                                             qemu_plugin_tb_n_insns(tb));
}

static void on_exit(qemu_plugin_id_t id, void *data)
{
    FILE *file = fopen(out_path, "w");
    if (file) {
        for (size_t i = 0; i < n_marks; i++) {
            fprintf(file, "%llu\n", (unsigned long long)marks[i]);
        }
        fclose(file);
    }
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    if (argc != 1 || strncmp(argv[0], "out=", 4) != 0) {
        fprintf(stderr, "icount plugin: expected out=FILE\n");
        return -1;
    }
    snprintf(out_path, sizeof out_path, "%s", argv[0] + 4);
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, on_exit, NULL);
    return 0;
}

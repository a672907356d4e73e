/* vm.c: the backend table and vm.h's operations, each handed to the backend that runs the VM. */
#include "vm.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct vm_backend *const backends[] = {
	&vm_backend_qemu,
	&vm_backend_libvirt,
};

const struct vm_backend *vm_backend_find(const char *name)
{
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (!strcmp(backends[i]->name, name))
			return backends[i];
	return NULL;
}

const struct vm_backend *vm_backend_default(void)
{
	return backends[0];
}

const char *vm_backend_names(void)
{
	static char names[128];

	/* from the table, so a new backend needs no second edit here */
	if (!names[0])
		for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
			snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
				 i ? ", " : "", backends[i]->name);
	return names;
}

int vm_start(const struct vm_config *cfg, struct vm **out, struct kerr *e)
{
	const struct vm_backend *be = cfg->backend ? cfg->backend : vm_backend_default();

	return be->start(cfg, out, e);
}

const char *vm_accel(const struct vm *vm)
{
	return vm->be->accel(vm);
}

const char *vm_version(const struct vm *vm)
{
	return vm->be->version(vm);
}

enum vm_wait_result vm_wait_ready(struct vm *vm, unsigned timeout_ms, json_object **ready,
				  struct kerr *e)
{
	return vm->be->wait_ready(vm, timeout_ms, ready, e);
}

enum vm_wait_result vm_agent_call(struct vm *vm, const char *op, json_object *args,
				  unsigned timeout_ms, struct proto_msg *reply, struct kerr *e)
{
	return vm->be->agent_call(vm, op, args, timeout_ms, reply, e);
}

int vm_dump(struct vm *vm, struct sb *out, struct kerr *e)
{
	return vm->be->dump(vm, out, e);
}

int vm_alive(struct vm *vm, unsigned timeout_ms)
{
	return vm->be->alive(vm, timeout_ms);
}

enum vm_wait_result vm_pump(struct vm *vm, unsigned ms, struct kerr *e)
{
	return vm->be->pump(vm, ms, e);
}

const char *vm_exit_reason(const struct vm *vm)
{
	return vm->be->exit_reason(vm);
}

int vm_guest_reset(const struct vm *vm)
{
	return vm->be->guest_reset(vm);
}

int vm_host_ended(const struct vm *vm)
{
	return vm->be->host_ended(vm);
}

const char *vm_host_lost(const struct vm *vm)
{
	return vm->be->host_lost ? vm->be->host_lost(vm) : NULL;
}

int vm_log_errno(const struct vm *vm)
{
	return vm->be->log_errno(vm);
}

void vm_channel_stats(const struct vm *vm, uint64_t *oversized, uint64_t *malformed)
{
	vm->be->channel_stats(vm, oversized, malformed);
}

void vm_stop(struct vm *vm, unsigned grace_ms)
{
	vm->be->stop(vm, grace_ms);
}

void vm_destroy(struct vm *vm)
{
	if (vm)
		vm->be->destroy(vm);
}

enum vm_wait_result vm_upload(struct vm *vm, const char *host_path, const char *guest_path,
			      unsigned mode, unsigned timeout_ms, struct kerr *e)
{
	struct sb file = SB_INIT;
	enum vm_wait_result r = VM_OK;
	size_t off = 0;

	if (read_file(host_path, &file, KLPQ_UPLOAD_MAX, e) < 0) {
		sb_release(&file);
		return VM_BROKEN;
	}
	do {
		size_t n = file.len - off < KLPQ_UPLOAD_CHUNK ? file.len - off : KLPQ_UPLOAD_CHUNK;
		char *data = proto_b64_encode(file.buf + off, n);
		json_object *args = json_object_new_object();
		struct proto_msg m;

		if (!data) {
			json_object_put(args);
			kerr_set(e, "upload %s: out of memory", host_path);
			r = VM_BROKEN;
			break;
		}
		json_object_object_add(args, "path", json_object_new_string(guest_path));
		json_object_object_add(args, "size", json_object_new_int64((int64_t)file.len));
		json_object_object_add(args, "offset", json_object_new_int64((int64_t)off));
		json_object_object_add(args, "mode", json_object_new_int((int)mode));
		json_object_object_add(args, "data", json_object_new_string(data));
		free(data);
		r = vm_agent_call(vm, "upload", args, timeout_ms, &m, e);
		if (r != VM_OK)
			break;
		if (!m.ok) {
			kerr_set(e, "upload %s to %s: %s", host_path, guest_path,
				 m.error ? m.error : "refused");
			proto_msg_release(&m);
			r = VM_BROKEN;
			break;
		}
		proto_msg_release(&m);
		off += n;
	} while (off < file.len);
	sb_release(&file);
	return r;
}

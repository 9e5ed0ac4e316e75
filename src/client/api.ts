// Generated from openapi/openapi.json by scripts/client-types.ts (openapi-typescript): do not edit.
export interface paths {
    "/healthz": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Liveness: the process is up and answering
         * @description Answers 200 while the process runs and its event loop turns; it does not look at the store. For liveness probes and the image HEALTHCHECK.
         */
        get: operations["health"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/readyz": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Readiness: state loaded, ready for decisions
         * @description 200 once the decided state and the stored flush jobs are loaded and the store answers; 503, with the check that fails, while not, so that a load balancer sends decisions elsewhere.
         */
        get: operations["ready"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/vms": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * List VMs (paged)
         * @description Every VM with its whole state, in id order: `limit` per page, `nextCursor` to continue.
         */
        get: operations["listVms"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/vms/{vmId}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The whole state of a VM
         * @description Domains (coherent, exposed), devices (their bit, the bit that governs them, whether they may no-snoop, their quirks), pinned totals, K1 and the revision. `?minRevision=` answers once this replica has applied that change of the VM.
         */
        get: operations["getVm"];
        /**
         * Create a VM or replace its policy
         * @description The policy is the server default overlaid with `policy`, resolved now and kept as resolved: a restart under other server defaults does not change it. Making a policy stricter (e.g. to pessimistic) can expose domains: the answer then carries the F2 replay flush. A policy that now denies a bit already set lists the device in `devices` with the value that clears it; its exposure ends once the VMM reports the bit clear.
         */
        put: operations["putVm"];
        post?: never;
        /**
         * Tear a VM down (F5)
         * @description Every pinned range is released with unpin semantics: ranges with flushOnUnpin are flushed first.
         */
        delete: operations["deleteVm"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/vms/{vmId}/domains/{domainId}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        /**
         * Attach or change an IOMMU domain
         * @description A domain that does not enforce cache coherency and becomes exposed triggers the F2 replay of pinned ranges. A coherency change that makes the policy deny a bit already set lists the device in `devices` with the value that clears it.
         */
        put: operations["putDomain"];
        post?: never;
        /**
         * Remove an IOMMU domain
         * @description Refused (409 DOMAIN_HAS_DEVICES) while devices are attached. Removing the last domain unmaps and releases every range (F5).
         */
        delete: operations["deleteDomain"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/vms/{vmId}/devices/{bdf}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        /**
         * Assign, move or report a device
         * @description Also how the VMM reports the Enable No Snoop state it reads back: a cleared bit counts only once reported here (`disabled`), after writing the `hardwareValue` a devctl, reset or policy answer gave. A device that may no-snoop exposes its non-coherent domain (F2). A device attached with its bit set where the policy denies it (virtualize-zero, or trap whose onEnable denies it) is answered with the `hardwareValue` that clears it, to be written before the guest gets the device: nothing is replayed (W3, W4); so is one attached `unknown` under those policies (it counts as able to no-snoop until reported `disabled`). A report of a device already in its domain saying the bit reads 1 where the policy denies it is answered with its clear in the same answer. A report whose `devctl` has bit 11 set while `nosnoop` says `disabled` or `hardwired-zero` contradicts itself: 400 `INVALID_DEVICE`, nothing changed.
         */
        put: operations["putDevice"];
        post?: never;
        /**
         * Remove a device from the VM
         * @description Unassigns the device and answers the decision it causes: the rules that fired and K1 for the VM.
         */
        delete: operations["deleteDevice"];
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/vms/{vmId}/devices/{bdf}/reset": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Report a device reset (FLR or bus reset), before it happens (R1)
         * @description By default the reset restores config space, as every reset vfio-pci performs does: Enable No Snoop keeps its state and nothing is replayed. With `{"restoresConfig":false}` the bit returns to 1 unless hardwired to 0; the device counts as enabled until the VMM reports otherwise, and the answer carries the replay flush and the DEVCTL value that re-applies the policy.
         */
        post: operations["resetDevice"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/vms/{vmId}/devices/{bdf}/devctl": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Decide a trapped PCIe Device Control write (W1-W8)
         * @description Give the 16-bit `value` the guest wrote, or just `nosnoopEnable`. Write `hardwareValue` to the device only after performing `flush`. `dryRun` evaluates without changing anything.
         */
        post: operations["devctl"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/vms/{vmId}/pins": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Pinned ranges in IOVA order (paged)
         * @description Each pinned range with its host address, memory type, mmio, flushOnUnpin flag and domains: `limit` per page, `nextCursor` to continue.
         */
        get: operations["listPins"];
        put?: never;
        /**
         * Pin and map one range or a batch (F1)
         * @description Perform `flush` (`when: before-map`) before the range is mapped and reachable by DMA. A batch (`{"ranges": [...]}`, at most the batch limit, 10,000 by default) is all or nothing. Overlaps are refused with 409 PIN_OVERLAP.
         */
        post: operations["pin"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/vms/{vmId}/unpins": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Unmap and unpin one range or a batch (F3)
         * @description Unmap from the IOMMU, perform `flush` (`when: after-unmap`), then release the pages. Whole pinned ranges only: cutting one in two is refused with 409 UNPIN_BISECTS; a range with nothing pinned is 404 UNKNOWN_RANGE.
         */
        post: operations["unpin"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/vms/{vmId}/decisions/flush": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Must I flush? (read-only)
         * @description A dry run of the change it previews, classified by the same code: same verdict, same flush ranges, same errors, nothing changed. `map`: a range not pinned answers as a pin of it would (F1, C1, F4; 409 `VM_HAS_NO_DOMAINS`, `PIN_OVERLAP` within the batch); one wholly pinned already answers as a replay into `domains` (or its own domains) would (F2); one partly pinned is refused as the pin would be (409 `PIN_OVERLAP`). Without `hpa` a required flush is reported but its host range is left to the caller. `unmap`: as the unpin would (F3, F4; 404 `UNKNOWN_RANGE`, 409 `UNPIN_BISECTS`).
         */
        post: operations["mustFlush"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/flush-jobs/{jobId}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * A flush job and its receipt
         * @description The job's state (queued, running, pending, acknowledged, done, failed), the decisions it carries, and its receipt: bytes, ranges and modelled cost.
         */
        get: operations["getFlushJob"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/flush-jobs/{jobId}/ack": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Acknowledge a flush: the VMM performed it
         * @description The VMM of the job's VM (`vmm` scope) reports the job's flush done: exactly the ranges of the answer that named it, nothing else of the batch it was planned in. Until then the job is `pending` and answers that are safe only once it is done list it in `flush.after`. Acknowledging again (even a job that has left the history) answers 200 and changes nothing. Through any replica: one that does not know the job yet catches up on its VM first. The body is optional.
         */
        post: operations["ack"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/flush-jobs/{jobId}/ranges": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * A flush job's coalesced host ranges (paged)
         * @description Waits for the job to be planned. Lists every range, including those an answer left out (rangesTruncated).
         */
        get: operations["listFlushJobRanges"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/vms/{vmId}/flush-jobs": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Flush jobs of a VM, oldest first (paged)
         * @description The flush jobs kept for the VM, oldest first: `limit` per page, `nextCursor` to continue.
         */
        get: operations["listFlushJobs"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/vms/{vmId}/events": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The VM's events (Server-Sent Events, text/event-stream)
         * @description Each event has an `id` and a type: `decision` (a change to this VM, whoever made it, with its decision as the change answered it; the `actor` and `revision` tell a VMM its own changes from others), `policy` (the VM's policy replaced), `deleted`, `flush-job` (one of its flush jobs planned or acknowledged: a `pending` job is the VMM's to flush and acknowledge) and `reset` (the events after `Last-Event-ID` are no longer held, or come from an earlier start or another replica: re-read the VM). Changes made through another replica sharing the store arrive as they do through this one. Send `Last-Event-ID` to resume. Comment lines every 15 s keep an idle stream open. A subscriber more than 4 MiB behind gets a `dropped` event and the stream ends (it resumes by id); a token may hold 16 streams at once (429 TOO_MANY_STREAMS beyond).
         */
        get: operations["events"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/quirks": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The quirk list
         * @description The list in force is the one the store keeps: a restart with another QUIRKS_FILE does not change it (`configured.inForce` is then false, and the log says so); PUT /v1/quirks applies a list, POST /v1/quirks adds or replaces entries, with their flushes.
         */
        get: operations["getQuirks"];
        /**
         * Replace the quirk list
         * @description Replaces the whole list (the shipped entries too: to add or change a few entries, POST /v1/quirks). A device newly quirked ignores-nosnoop-enable exposes its domain: the affected VMs are listed with their F2 replay flushes.
         */
        put: operations["putQuirks"];
        /**
         * Add or replace quirk entries
         * @description Merges the entries into the list in force, as it is when the change is applied (concurrent changes, on any replica, all keep their entries): each replaces the entry for the same devices (the same vendorId, deviceMask and deviceId under it), or is added. Two entries of the body for the same devices are refused (INVALID_QUIRK). Answered as PUT /v1/quirks is: the list now in force, and the VMs whose domains the change exposed with their F2 replay flushes.
         */
        post: operations["addQuirks"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/policy": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * Server policy defaults and choices
         * @description What a VM gets when its PUT leaves a policy field unset, and the values each field allows.
         */
        get: operations["getPolicy"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/audit": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The audit trail of accepted changes (paged, oldest first)
         * @description Accepted changes, oldest first: who (the token), what (the command) and the rules that fired; by VM and time; `limit` per page, `nextCursor` to continue.
         */
        get: operations["listAudit"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/simulations": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * What if? Replay a trace under every policy mode
         * @description Replays a reference trace or your own (JSON Lines) under each policy mode in the worker pool, against the coherency model, with the server's quirk list. Per mode: bytes flushed, modelled cycles and seconds, flush jobs and model violations (0 for a safe policy). Nothing in the service's state changes. The answer is also kept for GET (the most recent 64).
         */
        post: operations["simulate"];
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/simulations/{id}": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * A simulation result
         * @description The result of POST /v1/simulations: per mode the bytes flushed by cause, what pessimistic would flush, flush jobs, modelled cost, DEVCTL verdicts and violations.
         */
        get: operations["getSimulation"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/v1/simulations/{id}/chart.svg": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * A simulation as an SVG bar chart (one bar per mode)
         * @description One bar per mode, its height the bytes flushed, labelled with the bytes, the modelled time, the flush jobs and the verdict.
         */
        get: operations["getSimulationChart"];
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
}
export type webhooks = Record<string, never>;
export interface components {
    schemas: {
        /**
         * @description Byte address or length: a hex string ("0x7f3a00000") or a non-negative safe integer; multiple of 4 KiB
         * @example 0x100000000
         */
        HexAddressInput: string | number;
        /**
         * @description Memory type of the host mapping
         * @enum {string}
         */
        MemTypeInput: "WB" | "WT" | "WP" | "UC" | "UC-" | "WC";
        /** @description Per-VM policy; fields left out take the server defaults */
        VmPolicyInput: {
            /** @enum {string} */
            mode?: "pessimistic" | "trap" | "virtualize-zero";
            /** @enum {string} */
            onEnable?: "allow" | "deny" | "allow-needs-nosnoop";
            exemptNeedsNoSnoop?: boolean;
            /** @enum {string} */
            flushMethod?: "clflushopt" | "clflush" | "dc-civac";
            /** @description W8: per-device overrides by PCI address. `onEnable` decides that device's trapped enables ahead of the mode (W3, W4): `allow` lets it set the bit (replay first), `deny` keeps the bit 0 even for an exempted needs-nosnoop device. W1 and W7 still apply; pessimistic ignores it */
            devices?: {
                [key: string]: {
                    /** @enum {string} */
                    onEnable: "allow" | "deny";
                };
            };
            /** @description x86 only: flushes larger than this many bytes may use WBINVD. Absent: never */
            wbinvdAbove?: components["schemas"]["HexAddressInput"] | null;
        };
        /**
         * @example {
         *       "arch": "x86_64",
         *       "policy": {
         *         "mode": "trap",
         *         "onEnable": "allow"
         *       }
         *     }
         */
        PutVmInput: {
            /** @enum {string} */
            arch: "x86_64" | "aarch64";
            policy?: components["schemas"]["VmPolicyInput"];
        };
        /**
         * @example {
         *       "enforceCacheCoherency": false,
         *       "iommu": "vtd-igfx"
         *     }
         */
        PutDomainInput: {
            enforceCacheCoherency: boolean;
            iommu?: string | null;
        };
        /**
         * @example {
         *       "domainId": "d0",
         *       "vendorId": "0x8086",
         *       "deviceId": "0x9a49",
         *       "function": "pf",
         *       "nosnoop": "disabled"
         *     }
         */
        PutDeviceInput: {
            /** @description The IOMMU domain the device is attached to; null or absent: none */
            domainId?: string | null;
            vendorId: string;
            deviceId: string;
            /**
             * @description Default: "pf".
             * @enum {string}
             */
            function?: "pf" | "vf";
            physfn?: string | null;
            /**
             * @description Enable No Snoop as the VMM reads it (a VF: its PF's bit as the host set it)
             * @enum {string}
             */
            nosnoop: "enabled" | "disabled" | "hardwired-zero" | "unknown";
            pci?: boolean;
            /** @description Current DEVCTL value, if known */
            devctl?: string;
        };
        /**
         * @example {
         *       "nosnoopEnable": true
         *     }
         * @example {
         *       "value": "0x2810"
         *     }
         */
        DevctlWriteInput: {
            /** @description The 16-bit value the guest wrote */
            value?: string;
            /** @description Or only the Enable No Snoop bit */
            nosnoopEnable?: boolean;
            /** @description Default: false. */
            dryRun?: boolean;
        };
        /**
         * @example {
         *       "restoresConfig": false
         *     }
         */
        DeviceResetInput: {
            /** @description Default true: vfio-pci saves and restores config space around every reset it performs (VFIO_DEVICE_RESET, the emulated FLR bit, hot reset), so Enable No Snoop keeps its state and nothing is replayed. False: a reset that does not restore config; the bit returns to 1 unless hardwired to 0 (R1 replay) */
            restoresConfig?: boolean;
        } | null;
        PinRangeInput: {
            iova: components["schemas"]["HexAddressInput"];
            hpa: components["schemas"]["HexAddressInput"];
            length: components["schemas"]["HexAddressInput"];
            memType?: components["schemas"]["MemTypeInput"];
            mmio?: boolean;
            /** @description Domains the range maps into; absent: every domain of the VM */
            domains?: string[];
        };
        IovaRangeInput: {
            iova: components["schemas"]["HexAddressInput"];
            length: components["schemas"]["HexAddressInput"];
        };
        /**
         * @example {
         *       "iova": "0x0",
         *       "hpa": "0x100000000",
         *       "length": "0x200000000"
         *     }
         */
        PinRequestInput: components["schemas"]["PinRangeInput"] | {
            ranges: components["schemas"]["PinRangeInput"][];
        };
        /**
         * @example {
         *       "iova": "0x0",
         *       "length": "0x200000000"
         *     }
         */
        UnpinRequestInput: components["schemas"]["IovaRangeInput"] | {
            ranges: components["schemas"]["IovaRangeInput"][];
        };
        /**
         * @example {
         *       "op": "map",
         *       "ranges": [
         *         {
         *           "iova": "0x0",
         *           "length": "0x1000"
         *         }
         *       ]
         *     }
         */
        FlushQueryInput: {
            /** @enum {string} */
            op: "map" | "unmap";
            ranges: {
                iova: components["schemas"]["HexAddressInput"];
                length: components["schemas"]["HexAddressInput"];
                hpa?: components["schemas"]["HexAddressInput"];
                memType?: components["schemas"]["MemTypeInput"];
                mmio?: boolean;
                domains?: string[];
            }[];
        };
        /** @description The VMM's report of the flush it performed (every field optional) */
        FlushAckInput: {
            /** @description Bytes the VMM flushed */
            flushedBytes?: components["schemas"]["HexAddressInput"];
            /** @description How long the flush took, in nanoseconds */
            durationNs?: number;
        } | null;
        QuirkInput: {
            vendorId: string;
            deviceId: string;
            flags: ("ignores-nosnoop-enable" | "needs-nosnoop")[];
            deviceMask?: string;
            note?: string;
            source?: string;
        };
        /**
         * @example {
         *       "quirks": [
         *         {
         *           "vendorId": "0x8086",
         *           "deviceId": "0x9a49",
         *           "flags": [
         *             "needs-nosnoop"
         *           ]
         *         }
         *       ]
         *     }
         */
        QuirkListInput: {
            quirks: components["schemas"]["QuirkInput"][];
        };
        /**
         * @example {
         *       "quirks": [
         *         {
         *           "vendorId": "0x1d0f",
         *           "deviceId": "0x1234",
         *           "flags": [
         *             "ignores-nosnoop-enable"
         *           ],
         *           "note": "no-snoops whatever its Enable No Snoop bit says"
         *         }
         *       ]
         *     }
         */
        QuirkAdditionsInput: {
            /** @description Each entry replaces the entry in force for the same devices (the same vendorId, deviceMask and deviceId under that mask, compared as numbers; deviceMask defaults to 0xffff) where it stood, or joins the end of the list */
            quirks: components["schemas"]["QuirkInput"][];
        };
        /** @description What to simulate: a reference trace or your own */
        SimulationRequestInput: {
            /**
             * @description A reference trace by name
             * @enum {string}
             */
            reference?: "desktop-gpu" | "viommu-network" | "server-1tib" | "desktop-gpu-arm64";
            /** @description A trace as JSON Lines text (one event per line; the format is in docs/simulations.md) */
            trace?: string;
            /** @description Modes to replay; default: every mode */
            modes?: ("pessimistic" | "trap" | "virtualize-zero")[];
        };
        /**
         * @description Hex byte value
         * @example 0x200000000
         */
        Hex: string;
        /**
         * @description Memory type of the host mapping
         * @enum {string}
         */
        MemType: "WB" | "WT" | "WP" | "UC" | "UC-" | "WC";
        /** @description A decision rule that fired (SPEC section 3) and what it decided */
        Reason: {
            /** @enum {string} */
            rule: "C1" | "F1" | "F2" | "F3" | "F4" | "F5" | "W1" | "W2" | "W3" | "W4" | "W5" | "W6" | "W7" | "W8" | "R1" | "K1";
            message: string;
        };
        HostRange: {
            hpa: components["schemas"]["Hex"];
            length: components["schemas"]["Hex"];
        };
        /**
         * @description `queued` (its batching window is open), `running` (being planned), `pending` (planned; the VMM must flush and acknowledge it), `acknowledged` (the VMM did), `done` when a teardown covered it. Where acknowledgements are not required (FLUSH_ACKS=answered) a planned job is `done` (or `failed` when its planning failed).
         * @enum {string}
         */
        FlushJobState: "queued" | "running" | "pending" | "acknowledged" | "done" | "failed";
        /** @description What the planned flush costs under the cost model */
        FlushReceipt: {
            jobId: string;
            state: components["schemas"]["FlushJobState"];
            /** @enum {string} */
            method: "clflushopt" | "clflush" | "dc-civac" | "wbinvd";
            bytes: components["schemas"]["Hex"];
            /** @description Coalesced host ranges */
            ranges: number;
            /** @description 64-byte cache lines */
            lines: number;
            fences: number;
            chunks: number;
            modeledCycles: number;
            modeledNs: number;
            /** @description In an answer's receipt: bytes of the whole job, which may carry other decisions' flushes (the other figures are this answer's own) */
            jobBytes?: components["schemas"]["Hex"];
            /** @description In an answer's receipt: decisions the job carries */
            jobDecisions?: number;
        };
        /** @description What must be flushed, and when relative to the change (`when`) */
        Flush: {
            required: boolean;
            bytes: components["schemas"]["Hex"];
            /** @description Host-physical ranges to flush, sorted and coalesced; at most 10,000 are listed */
            ranges: components["schemas"]["HostRange"][];
            /** @description How many ranges the flush has */
            rangeCount: number;
            /** @description True when not every range is listed here: page them with GET /v1/flush-jobs/{jobId}/ranges */
            rangesTruncated: boolean;
            /** @enum {string} */
            cause?: "pin" | "unpin" | "replay" | "teardown";
            /**
             * @description When to flush: `before-map` (pins, replays: flush, then the change takes effect) or `after-unmap` (unpins, teardown, domain removal: unmap from the IOMMU, flush, then release the pages)
             * @enum {string}
             */
            when?: "before-map" | "after-unmap";
            /** @description The flush job that carries it (GET /v1/flush-jobs/{jobId}); the VMM acknowledges it with POST /v1/flush-jobs/{jobId}/ack once flushed */
            jobId?: string;
            /** @description Outstanding flush jobs of this VM (replays not acknowledged yet) that this change depends on: perform the change only once each is acknowledged. With ?wait=true the change waits for them instead and this is absent */
            after?: string[];
            /** @description With ?wait=true: the finished job's receipt */
            receipt?: components["schemas"]["FlushReceipt"];
        };
        /** @description RFC 9457 problem details (application/problem+json) */
        Problem: {
            type: string;
            title: string;
            status: number;
            detail: string;
            instance?: string;
            /** @description Stable machine-readable error code */
            code: string;
            requestId?: string;
            errors?: {
                path: string;
                message: string;
            }[];
            details?: {
                [key: string]: unknown;
            };
        };
        Policy: {
            /** @enum {string} */
            mode: "pessimistic" | "trap" | "virtualize-zero";
            /** @enum {string} */
            onEnable: "allow" | "deny" | "allow-needs-nosnoop";
            exemptNeedsNoSnoop: boolean;
            /** @enum {string} */
            flushMethod: "clflushopt" | "clflush" | "dc-civac";
            /** @description W8: per-device overrides of trapped enables, by PCI address (lower case); absent when there are none */
            devices?: {
                [key: string]: {
                    /** @enum {string} */
                    onEnable: "allow" | "deny";
                };
            };
            wbinvdAbove: components["schemas"]["Hex"] | null;
        };
        Domain: {
            id: string;
            enforceCacheCoherency: boolean;
            iommu: string | null;
            coherent: boolean;
            /** @description Not coherent, and pessimistic or an attached device may no-snoop */
            exposed: boolean;
            devices: string[];
        };
        Device: {
            bdf: string;
            domainId: string | null;
            vendorId: string;
            deviceId: string;
            /** @enum {string} */
            function: "pf" | "vf";
            physfn: string | null;
            pci: boolean;
            /**
             * @description The state that counts: as last reported, or as decided when the decision made the device more exposed
             * @enum {string}
             */
            nosnoop: "enabled" | "disabled" | "hardwired-zero" | "unknown";
            /** @description A less exposed state decided but not yet reported by the VMM (a denied or cleared bit): it counts once a device PUT reports it */
            pendingNosnoop: ("enabled" | "disabled" | "hardwired-zero" | "unknown") | null;
            /**
             * @description The bit that governs the device (a VF: its PF's when the PF is in this VM, otherwise `unknown`)
             * @enum {string}
             */
            effectiveNosnoop: "enabled" | "disabled" | "hardwired-zero" | "unknown";
            mayNoSnoop: boolean;
            devctl: string;
            /** @description Flags of the quirks that matched */
            quirks: ("ignores-nosnoop-enable" | "needs-nosnoop")[];
        };
        /** @description The whole state of a VM */
        Vm: {
            id: string;
            /** @enum {string} */
            arch: "x86_64" | "aarch64";
            policy: components["schemas"]["Policy"];
            domains: components["schemas"]["Domain"][];
            devices: components["schemas"]["Device"][];
            pinned: {
                ranges: number;
                bytes: components["schemas"]["Hex"];
                flushOnUnpinBytes: components["schemas"]["Hex"];
            };
            kvmNoncoherentDma: boolean;
            /** @description Flush jobs not finished yet */
            openFlushJobs: string[];
            revision: number;
            createdAt: string;
            updatedAt: string;
        };
        AuditEntry: {
            /** @description Global sequence number of the change */
            revision: number;
            at: string;
            /** @description Token id, or "anonymous" without tokens */
            actor: string;
            vmId: string | null;
            /** @description The command: put-vm, pin, devctl, put-quirks, ... */
            action: string;
            /** @description Rule ids the decision named */
            rules: string[];
            /** @description The command as stored (addresses in 4 KiB pages) */
            change: {
                [key: string]: unknown;
            };
        };
        /** @description A decision: the flush to perform first and the rules that fired */
        Decision: {
            flush: components["schemas"]["Flush"];
            reasons: components["schemas"]["Reason"][];
            /** @description K1: KVM must honour guest WBINVD and PAT for this VM */
            kvmNoncoherentDma: boolean;
            /** @description Revision of the VM after this change */
            revision: number;
            /** @description A policy, domain, device or quirk change that makes the policy deny a bit already set: the value to write to each such device of the VM. The exposure it causes ends once the VMM reports each device disabled (device PUT). */
            devices?: {
                bdf: string;
                /** @enum {string} */
                decision: "allow" | "deny";
                /** @description DEVCTL value to write to this device */
                hardwareValue: string;
                /** @description DEVCTL value the guest reads back */
                guestValue: string;
            }[];
        };
        DeviceDecision: {
            flush: components["schemas"]["Flush"];
            reasons: components["schemas"]["Reason"][];
            /** @description K1: KVM must honour guest WBINVD and PAT for this VM */
            kvmNoncoherentDma: boolean;
            /** @description Revision of the VM after this change */
            revision: number;
            /** @description A policy, domain, device or quirk change that makes the policy deny a bit already set: the value to write to each such device of the VM. The exposure it causes ends once the VMM reports each device disabled (device PUT). */
            devices?: {
                bdf: string;
                /** @enum {string} */
                decision: "allow" | "deny";
                /** @description DEVCTL value to write to this device */
                hardwareValue: string;
                /** @description DEVCTL value the guest reads back */
                guestValue: string;
            }[];
            /** @enum {string} */
            decision?: "allow" | "deny" | "ignore";
            /** @description DEVCTL value to write to the device */
            hardwareValue?: string;
            /** @description DEVCTL value the guest reads back */
            guestValue?: string;
        };
        /** @description The answer to a trapped DEVCTL write */
        DevctlDecision: {
            flush: components["schemas"]["Flush"];
            reasons: components["schemas"]["Reason"][];
            /** @description K1: KVM must honour guest WBINVD and PAT for this VM */
            kvmNoncoherentDma: boolean;
            /** @description Revision of the VM after this change */
            revision: number;
            /** @enum {string} */
            decision: "allow" | "deny" | "ignore";
            hardwareValue: string;
            guestValue: string;
            dryRun: boolean;
            /** @description A policy, domain, device or quirk change that makes the policy deny a bit already set: the value to write to each such device of the VM. The exposure it causes ends once the VMM reports each device disabled (device PUT). */
            devices?: {
                bdf: string;
                /** @enum {string} */
                decision: "allow" | "deny";
                /** @description DEVCTL value to write to this device */
                hardwareValue: string;
                /** @description DEVCTL value the guest reads back */
                guestValue: string;
            }[];
            /**
             * @description Present when the state could not be vouched for and the answer failed closed
             * @enum {string}
             */
            failClosed?: "STORE_UNAVAILABLE";
        };
        FlushJob: {
            id: string;
            vmId: string;
            /** @enum {string} */
            arch: "x86_64" | "aarch64";
            /** @enum {string} */
            cause: "pin" | "unpin" | "replay" | "teardown";
            state: components["schemas"]["FlushJobState"];
            /** @description Answers whose flush this job is: always 1 (a job is one answer's own flush) */
            decisions: number;
            /** @description Bytes requested by those decisions, before coalescing */
            requestedBytes: components["schemas"]["Hex"];
            createdAt: string;
            startedAt: string | null;
            finishedAt: string | null;
            receipt: components["schemas"]["FlushReceipt"] | null;
            error: string | null;
            /** @description When the VMM acknowledged the flush */
            acknowledgedAt: string | null;
            /** @description The batch it was planned in (null until planned). An acknowledgement covers this job only, never the batch. */
            batch: {
                /** @description The batch this flush was planned and priced in, with the flushes of other answers of its window */
                id: string;
                /** @description Answers whose flushes the batch planned together */
                decisions: number;
                /** @description Bytes of the whole batch, coalesced */
                bytes: components["schemas"]["Hex"];
            } | null;
            /** @description What the VMM reported with its acknowledgement */
            report: {
                flushedBytes?: components["schemas"]["Hex"];
                durationNs?: number;
            } | null;
        };
        /**
         * event: decision
         * @description The data of a `decision` event: a change to the VM, whoever made it (another replica's included), with its decision as the change answered it: the flush, when to perform it, the jobs it waits for (`flush.after`) and DEVCTL values to write
         */
        DecisionEvent: {
            /** @description The VM the event is about */
            vmId: string;
            /**
             * @description The change, as the route that made it
             * @enum {string}
             */
            command: "put-domain" | "delete-domain" | "put-device" | "delete-device" | "reset-device" | "pin" | "unpin" | "devctl" | "put-quirks";
            /** @description Who made the change: the token id, or "anonymous" without a token file (a VMM tells its own changes from others by it and by `revision`) */
            actor: string;
            flush: components["schemas"]["Flush"];
            reasons: components["schemas"]["Reason"][];
            /** @description K1: KVM must honour guest WBINVD and PAT for this VM */
            kvmNoncoherentDma: boolean;
            /** @description Revision of the VM after this change */
            revision: number;
            /** @description A policy, domain, device or quirk change that makes the policy deny a bit already set: the value to write to each such device of the VM. The exposure it causes ends once the VMM reports each device disabled (device PUT). */
            devices?: {
                bdf: string;
                /** @enum {string} */
                decision: "allow" | "deny";
                /** @description DEVCTL value to write to this device */
                hardwareValue: string;
                /** @description DEVCTL value the guest reads back */
                guestValue: string;
            }[];
            /** @enum {string} */
            decision?: "allow" | "deny" | "ignore";
            /** @description DEVCTL value to write to the device */
            hardwareValue?: string;
            /** @description DEVCTL value the guest reads back */
            guestValue?: string;
        };
        /**
         * event: policy
         * @description The data of a `policy` event: the VM's policy was replaced (PUT /v1/vms/{vmId}), with the decision it caused
         */
        PolicyEvent: {
            /** @description The VM the event is about */
            vmId: string;
            /** @description Who made the change: the token id, or "anonymous" without a token file (a VMM tells its own changes from others by it and by `revision`) */
            actor: string;
            flush: components["schemas"]["Flush"];
            reasons: components["schemas"]["Reason"][];
            /** @description K1: KVM must honour guest WBINVD and PAT for this VM */
            kvmNoncoherentDma: boolean;
            /** @description Revision of the VM after this change */
            revision: number;
            /** @description A policy, domain, device or quirk change that makes the policy deny a bit already set: the value to write to each such device of the VM. The exposure it causes ends once the VMM reports each device disabled (device PUT). */
            devices?: {
                bdf: string;
                /** @enum {string} */
                decision: "allow" | "deny";
                /** @description DEVCTL value to write to this device */
                hardwareValue: string;
                /** @description DEVCTL value the guest reads back */
                guestValue: string;
            }[];
        };
        /**
         * event: deleted
         * @description The data of a `deleted` event: the VM was deleted, with its teardown decision (the flush of what was still pinned); the stream stays open in case the VM is created again
         */
        DeletedEvent: {
            /** @description The VM the event is about */
            vmId: string;
            /** @description Who made the change: the token id, or "anonymous" without a token file (a VMM tells its own changes from others by it and by `revision`) */
            actor: string;
            flush: components["schemas"]["Flush"];
            reasons: components["schemas"]["Reason"][];
            /** @description K1: KVM must honour guest WBINVD and PAT for this VM */
            kvmNoncoherentDma: boolean;
            /** @description Revision of the VM after this change */
            revision: number;
            /** @description A policy, domain, device or quirk change that makes the policy deny a bit already set: the value to write to each such device of the VM. The exposure it causes ends once the VMM reports each device disabled (device PUT). */
            devices?: {
                bdf: string;
                /** @enum {string} */
                decision: "allow" | "deny";
                /** @description DEVCTL value to write to this device */
                hardwareValue: string;
                /** @description DEVCTL value the guest reads back */
                guestValue: string;
            }[];
        };
        /**
         * event: flush-job
         * @description The data of a `flush-job` event: one of the VM's flush jobs as GET /v1/flush-jobs/{jobId} answers it, once planned (`pending`: the VMM flushes and acknowledges it; `done` or `failed` where acknowledgements are not required) and once acknowledged
         */
        FlushJobEvent: components["schemas"]["FlushJob"];
        /**
         * event: reset
         * @description The data of a `reset` event: the events after the `Last-Event-ID` sent are no longer held, or it came from an earlier start of the service or another replica: re-read the VM (GET /v1/vms/{vmId}) and carry on from the events that follow
         */
        ResetEvent: {
            /** @description The VM the event is about */
            vmId: string;
            /** @description Why, for a person */
            reason: string;
        };
        /**
         * event: dropped
         * @description The data of a `dropped` event (it has no id): the subscriber fell more than 4 MiB behind and the stream ends; reconnect with the last `Last-Event-ID` read to resume
         */
        DroppedEvent: {
            /** @description The VM the event is about */
            vmId: string;
            /** @description Why, for a person */
            reason: string;
        };
        PinnedRange: {
            iova: components["schemas"]["Hex"];
            length: components["schemas"]["Hex"];
            hpa: components["schemas"]["Hex"];
            memType: components["schemas"]["MemType"];
            mmio: boolean;
            flushOnUnpin: boolean;
            domains: string[] | null;
        };
        /** @description Read-only: must the caller flush for this map or unmap? */
        FlushQueryAnswer: {
            /** @enum {string} */
            op: "map" | "unmap";
            flush: components["schemas"]["Flush"];
            reasons: components["schemas"]["Reason"][];
            kvmNoncoherentDma: boolean;
            results: {
                iova: components["schemas"]["Hex"];
                length: components["schemas"]["Hex"];
                required: boolean;
                /** @enum {string} */
                rule: "C1" | "F1" | "F2" | "F3" | "F4" | "F5" | "W1" | "W2" | "W3" | "W4" | "W5" | "W6" | "W7" | "W8" | "R1" | "K1";
            }[];
            /**
             * @description Present when the state could not be vouched for and the answer failed closed
             * @enum {string}
             */
            failClosed?: "STORE_UNAVAILABLE";
        };
        Health: {
            /** @constant */
            status: "ok";
        };
        Readiness: {
            /** @enum {string} */
            status: "ready" | "not-ready";
            checks: {
                [key: string]: boolean;
            };
        };
        /**
         * @example {
         *       "defaults": {
         *         "mode": "trap",
         *         "onEnable": "allow-needs-nosnoop",
         *         "exemptNeedsNoSnoop": true
         *       },
         *       "modes": [
         *         "pessimistic",
         *         "trap",
         *         "virtualize-zero"
         *       ],
         *       "onEnable": [
         *         "allow",
         *         "deny",
         *         "allow-needs-nosnoop"
         *       ],
         *       "flushMethods": {
         *         "x86_64": [
         *           "clflushopt",
         *           "clflush"
         *         ],
         *         "aarch64": [
         *           "dc-civac"
         *         ]
         *       },
         *       "batchLimit": 10000
         *     }
         */
        PolicyDefaults: {
            defaults: {
                /** @enum {string} */
                mode: "pessimistic" | "trap" | "virtualize-zero";
                /** @enum {string} */
                onEnable: "allow" | "deny" | "allow-needs-nosnoop";
                exemptNeedsNoSnoop: boolean;
            };
            modes: ("pessimistic" | "trap" | "virtualize-zero")[];
            onEnable: ("allow" | "deny" | "allow-needs-nosnoop")[];
            flushMethods: {
                /** @description Flush methods the policy of a VM on x86_64 may name */
                x86_64: ("clflushopt" | "clflush")[];
                /** @description Flush methods the policy of a VM on aarch64 may name */
                aarch64: "dc-civac"[];
            };
            batchLimit: number;
        };
        Quirk: {
            vendorId: string;
            deviceId: string;
            flags: ("ignores-nosnoop-enable" | "needs-nosnoop")[];
            deviceMask?: string;
            note?: string;
            source?: string;
        };
        QuirkListAnswer: {
            /** @description The quirk list in force */
            quirks: components["schemas"]["Quirk"][];
            /** @description The quirk list the server was started with (QUIRKS_FILE, or the shipped list) */
            configured: {
                /** @description False when the configured list differs from the one in force: it is not applied by a restart, only by PUT /v1/quirks */
                inForce: boolean;
                quirks: components["schemas"]["Quirk"][];
            };
        };
        PutQuirksAnswer: {
            /** @description The quirk list the change put in force */
            quirks: components["schemas"]["Quirk"][];
            /** @description VMs whose domains the change exposed, with their replay flushes */
            vms: {
                vmId: string;
                flush: components["schemas"]["Flush"];
                reasons: components["schemas"]["Reason"][];
                /** @description K1: KVM must honour guest WBINVD and PAT for this VM */
                kvmNoncoherentDma: boolean;
                /** @description Revision of the VM after this change */
                revision: number;
                /** @description A policy, domain, device or quirk change that makes the policy deny a bit already set: the value to write to each such device of the VM. The exposure it causes ends once the VMM reports each device disabled (device PUT). */
                devices?: {
                    bdf: string;
                    /** @enum {string} */
                    decision: "allow" | "deny";
                    /** @description DEVCTL value to write to this device */
                    hardwareValue: string;
                    /** @description DEVCTL value the guest reads back */
                    guestValue: string;
                }[];
            }[];
            /** @description The change's revision: `?minRevision=` with it reads any VM, on any replica, with this quirk list in force */
            revision?: number;
        };
        /** @description One policy mode replayed against the coherency model */
        SimulationMode: {
            /** @enum {string} */
            mode: "pessimistic" | "trap" | "virtualize-zero";
            events: number;
            /** @description Commands the replay sent to the decision core (runs and batches expanded) */
            commands: number;
            /** @description Commands the core rejected, by error code */
            rejected: {
                [key: string]: number;
            };
            flush: {
                /** @description Decisions that demanded a flush (one flush job each) */
                jobs: number;
                bytes: number;
                byCause: {
                    pin: number;
                    unpin: number;
                    replay: number;
                    teardown: number;
                };
                /** @description What the pessimistic policy would have flushed for the same decisions */
                pessimisticBytes: number;
            };
            /** @description Modelled flush cost (per-architecture cost model) */
            cost: {
                cycles: number;
                seconds: number;
            };
            /** @description Verdicts on the trace's DEVCTL writes */
            devctl: {
                allow: number;
                deny: number;
                ignore: number;
            };
            /** @description K1 held for a VM at some point */
            kvmNoncoherentDma: boolean;
            violations: {
                /** @description Hazards the coherency model saw: 0 for a safe policy */
                total: number;
                leakPages: number;
                stalePages: number;
                samples: {
                    /** @enum {string} */
                    kind: "leak" | "stale";
                    /** @description 1-based trace event */
                    event: number;
                    vm: string;
                    pages: number;
                    detail: string;
                }[];
            };
        };
        /** @description A what-if simulation: the same trace under every policy mode */
        Simulation: {
            id: string;
            createdAt: string;
            trace: {
                name: string;
                description: string | null;
                events: number;
                /** @description Pinned and unpinned ranges, repeats expanded */
                ranges: number;
                /** @description SHA-256 of the JSON Lines text replayed */
                sha256: string;
            };
            /** @description The policy defaults and quirk list the trace was replayed under: the server's own */
            config: {
                /** @enum {string} */
                onEnable: "allow" | "deny" | "allow-needs-nosnoop";
                exemptNeedsNoSnoop: boolean;
                /** @description Entries in the quirk list used */
                quirks: number;
            };
            modes: components["schemas"]["SimulationMode"][];
            summary: {
                /** @description No mode let the model see a hazard */
                safe: boolean;
                /** @description Per mode: share of the pessimistic bytes not flushed (0..1) */
                bytesSavedVsPessimistic: {
                    [key: string]: number;
                };
            };
            /** @description Wall-clock figures: the only part that differs between identical runs */
            timing: {
                wallMs: number;
                replayMs: {
                    [key: string]: number;
                };
            };
            links: {
                self: string;
                chart: string;
            };
        };
        VmDecision: {
            flush: components["schemas"]["Flush"];
            reasons: components["schemas"]["Reason"][];
            /** @description K1: KVM must honour guest WBINVD and PAT for this VM */
            kvmNoncoherentDma: boolean;
            /** @description Revision of the VM after this change */
            revision: number;
            vm: components["schemas"]["Vm"];
            /** @description A policy, domain, device or quirk change that makes the policy deny a bit already set: the value to write to each such device of the VM. The exposure it causes ends once the VMM reports each device disabled (device PUT). */
            devices?: {
                bdf: string;
                /** @enum {string} */
                decision: "allow" | "deny";
                /** @description DEVCTL value to write to this device */
                hardwareValue: string;
                /** @description DEVCTL value the guest reads back */
                guestValue: string;
            }[];
        };
        VmPage: {
            items: components["schemas"]["Vm"][];
            nextCursor?: string;
        };
        PinnedRangePage: {
            items: components["schemas"]["PinnedRange"][];
            nextCursor?: string;
        };
        HostRangePage: {
            items: components["schemas"]["HostRange"][];
            nextCursor?: string;
        };
        FlushJobPage: {
            items: components["schemas"]["FlushJob"][];
            nextCursor?: string;
        };
        AuditPage: {
            items: components["schemas"]["AuditEntry"][];
            nextCursor?: string;
            /** @description What the trail no longer has */
            retention: {
                days: number;
                /** @description Changes made before this time are no longer kept (past AUDIT_RETENTION, or removed to keep the trail within AUDIT_MAX_MB) */
                keptSince: string;
            };
        };
    };
    responses: never;
    parameters: never;
    requestBodies: never;
    headers: never;
    pathItems: never;
}
export type $defs = Record<string, never>;
export interface operations {
    health: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The answer */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Health"];
                };
            };
        };
    };
    ready: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The answer */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Readiness"];
                };
            };
            /** @description The service cannot vouch for its state now (store unavailable, overloaded, or a flush not acknowledged in time); nothing changed */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FLUSH_ACK_TIMEOUT" | "NOT_READY" | "OVERLOADED" | "STORE_UNAVAILABLE";
                    };
                };
            };
        };
    };
    listVms: {
        parameters: {
            query?: {
                /** @description Answer from the VM's state at least as fresh as the answer that gave this revision (any earlier answer's, possibly another replica's; revisions increase with each change of a VM) */
                minRevision?: number;
                limit?: number;
                cursor?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The answer */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["VmPage"];
                };
            };
            /** @description The request is invalid; the problem names the field */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ADDRESS_OVERFLOW" | "INVALID_CURSOR" | "INVALID_DEVICE" | "INVALID_HEX" | "INVALID_ID" | "INVALID_LENGTH" | "INVALID_PCI_ADDRESS" | "INVALID_POLICY" | "INVALID_QUIRK" | "INVALID_TRACE" | "MALFORMED_JSON" | "MALFORMED_URL" | "UNALIGNED" | "VALIDATION_FAILED";
                    };
                };
            };
            /** @description No token, or an unknown one (when the server has a token file) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNAUTHENTICATED";
                    };
                };
            };
            /** @description The token's scopes do not allow this route */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description Too many requests (or event streams) for this token; retry later */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "RATE_LIMITED" | "TOO_MANY_STREAMS";
                    };
                };
            };
            /** @description The service cannot vouch for its state now (store unavailable, overloaded, or a flush not acknowledged in time); nothing changed */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FLUSH_ACK_TIMEOUT" | "NOT_READY" | "OVERLOADED" | "STORE_UNAVAILABLE";
                    };
                };
            };
        };
    };
    getVm: {
        parameters: {
            query?: {
                /** @description Answer from the VM's state at least as fresh as the answer that gave this revision (any earlier answer's, possibly another replica's; revisions increase with each change of a VM) */
                minRevision?: number;
            };
            header?: never;
            path: {
                /** @description An id: a letter or digit, then up to 63 letters, digits, dots, underscores or hyphens */
                vmId: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The answer */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Vm"];
                };
            };
            /** @description The request is invalid; the problem names the field */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ADDRESS_OVERFLOW" | "INVALID_CURSOR" | "INVALID_DEVICE" | "INVALID_HEX" | "INVALID_ID" | "INVALID_LENGTH" | "INVALID_PCI_ADDRESS" | "INVALID_POLICY" | "INVALID_QUIRK" | "INVALID_TRACE" | "MALFORMED_JSON" | "MALFORMED_URL" | "UNALIGNED" | "VALIDATION_FAILED";
                    };
                };
            };
            /** @description No token, or an unknown one (when the server has a token file) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNAUTHENTICATED";
                    };
                };
            };
            /** @description The token's scopes do not allow this route */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description Something the request names does not exist */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ROUTE_NOT_FOUND" | "UNKNOWN_DEVICE" | "UNKNOWN_DOMAIN" | "UNKNOWN_FLUSH_JOB" | "UNKNOWN_RANGE" | "UNKNOWN_SIMULATION" | "UNKNOWN_VM";
                    };
                };
            };
            /** @description Too many requests (or event streams) for this token; retry later */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "RATE_LIMITED" | "TOO_MANY_STREAMS";
                    };
                };
            };
            /** @description The service cannot vouch for its state now (store unavailable, overloaded, or a flush not acknowledged in time); nothing changed */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FLUSH_ACK_TIMEOUT" | "NOT_READY" | "OVERLOADED" | "STORE_UNAVAILABLE";
                    };
                };
            };
        };
    };
    putVm: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description An id: a letter or digit, then up to 63 letters, digits, dots, underscores or hyphens */
                vmId: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["PutVmInput"];
            };
        };
        responses: {
            /** @description The answer */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["VmDecision"];
                };
            };
            /** @description Created: the answer */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["VmDecision"];
                };
            };
            /** @description The request is invalid; the problem names the field */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ADDRESS_OVERFLOW" | "INVALID_CURSOR" | "INVALID_DEVICE" | "INVALID_HEX" | "INVALID_ID" | "INVALID_LENGTH" | "INVALID_PCI_ADDRESS" | "INVALID_POLICY" | "INVALID_QUIRK" | "INVALID_TRACE" | "MALFORMED_JSON" | "MALFORMED_URL" | "UNALIGNED" | "VALIDATION_FAILED";
                    };
                };
            };
            /** @description No token, or an unknown one (when the server has a token file) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNAUTHENTICATED";
                    };
                };
            };
            /** @description The token's scopes do not allow this route */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description Something the request names does not exist */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ROUTE_NOT_FOUND" | "UNKNOWN_DEVICE" | "UNKNOWN_DOMAIN" | "UNKNOWN_FLUSH_JOB" | "UNKNOWN_RANGE" | "UNKNOWN_SIMULATION" | "UNKNOWN_VM";
                    };
                };
            };
            /** @description The request conflicts with the current state; nothing changed */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ARCH_CHANGE" | "DOMAIN_HAS_DEVICES" | "NOT_PCI" | "PIN_OVERLAP" | "UNPIN_BISECTS" | "VM_HAS_NO_DOMAINS";
                    };
                };
            };
            /** @description The body or the batch is too large */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "BATCH_TOO_LARGE" | "BODY_TOO_LARGE";
                    };
                };
            };
            /** @description The body is not JSON */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /** @description Too many requests (or event streams) for this token; retry later */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "RATE_LIMITED" | "TOO_MANY_STREAMS";
                    };
                };
            };
            /** @description The service cannot vouch for its state now (store unavailable, overloaded, or a flush not acknowledged in time); nothing changed */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FLUSH_ACK_TIMEOUT" | "NOT_READY" | "OVERLOADED" | "STORE_UNAVAILABLE";
                    };
                };
            };
        };
    };
    deleteVm: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description An id: a letter or digit, then up to 63 letters, digits, dots, underscores or hyphens */
                vmId: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The answer */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Decision"];
                };
            };
            /** @description The request is invalid; the problem names the field */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ADDRESS_OVERFLOW" | "INVALID_CURSOR" | "INVALID_DEVICE" | "INVALID_HEX" | "INVALID_ID" | "INVALID_LENGTH" | "INVALID_PCI_ADDRESS" | "INVALID_POLICY" | "INVALID_QUIRK" | "INVALID_TRACE" | "MALFORMED_JSON" | "MALFORMED_URL" | "UNALIGNED" | "VALIDATION_FAILED";
                    };
                };
            };
            /** @description No token, or an unknown one (when the server has a token file) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNAUTHENTICATED";
                    };
                };
            };
            /** @description The token's scopes do not allow this route */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description Something the request names does not exist */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ROUTE_NOT_FOUND" | "UNKNOWN_DEVICE" | "UNKNOWN_DOMAIN" | "UNKNOWN_FLUSH_JOB" | "UNKNOWN_RANGE" | "UNKNOWN_SIMULATION" | "UNKNOWN_VM";
                    };
                };
            };
            /** @description Too many requests (or event streams) for this token; retry later */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "RATE_LIMITED" | "TOO_MANY_STREAMS";
                    };
                };
            };
            /** @description The service cannot vouch for its state now (store unavailable, overloaded, or a flush not acknowledged in time); nothing changed */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FLUSH_ACK_TIMEOUT" | "NOT_READY" | "OVERLOADED" | "STORE_UNAVAILABLE";
                    };
                };
            };
        };
    };
    putDomain: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description An id: a letter or digit, then up to 63 letters, digits, dots, underscores or hyphens */
                vmId: string;
                /** @description An id: a letter or digit, then up to 63 letters, digits, dots, underscores or hyphens */
                domainId: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["PutDomainInput"];
            };
        };
        responses: {
            /** @description The answer */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Decision"];
                };
            };
            /** @description Created: the answer */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Decision"];
                };
            };
            /** @description The request is invalid; the problem names the field */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ADDRESS_OVERFLOW" | "INVALID_CURSOR" | "INVALID_DEVICE" | "INVALID_HEX" | "INVALID_ID" | "INVALID_LENGTH" | "INVALID_PCI_ADDRESS" | "INVALID_POLICY" | "INVALID_QUIRK" | "INVALID_TRACE" | "MALFORMED_JSON" | "MALFORMED_URL" | "UNALIGNED" | "VALIDATION_FAILED";
                    };
                };
            };
            /** @description No token, or an unknown one (when the server has a token file) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNAUTHENTICATED";
                    };
                };
            };
            /** @description The token's scopes do not allow this route */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description Something the request names does not exist */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ROUTE_NOT_FOUND" | "UNKNOWN_DEVICE" | "UNKNOWN_DOMAIN" | "UNKNOWN_FLUSH_JOB" | "UNKNOWN_RANGE" | "UNKNOWN_SIMULATION" | "UNKNOWN_VM";
                    };
                };
            };
            /** @description The request conflicts with the current state; nothing changed */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ARCH_CHANGE" | "DOMAIN_HAS_DEVICES" | "NOT_PCI" | "PIN_OVERLAP" | "UNPIN_BISECTS" | "VM_HAS_NO_DOMAINS";
                    };
                };
            };
            /** @description The body or the batch is too large */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "BATCH_TOO_LARGE" | "BODY_TOO_LARGE";
                    };
                };
            };
            /** @description The body is not JSON */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /** @description Too many requests (or event streams) for this token; retry later */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "RATE_LIMITED" | "TOO_MANY_STREAMS";
                    };
                };
            };
            /** @description The service cannot vouch for its state now (store unavailable, overloaded, or a flush not acknowledged in time); nothing changed */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FLUSH_ACK_TIMEOUT" | "NOT_READY" | "OVERLOADED" | "STORE_UNAVAILABLE";
                    };
                };
            };
        };
    };
    deleteDomain: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description An id: a letter or digit, then up to 63 letters, digits, dots, underscores or hyphens */
                vmId: string;
                /** @description An id: a letter or digit, then up to 63 letters, digits, dots, underscores or hyphens */
                domainId: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The answer */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Decision"];
                };
            };
            /** @description The request is invalid; the problem names the field */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ADDRESS_OVERFLOW" | "INVALID_CURSOR" | "INVALID_DEVICE" | "INVALID_HEX" | "INVALID_ID" | "INVALID_LENGTH" | "INVALID_PCI_ADDRESS" | "INVALID_POLICY" | "INVALID_QUIRK" | "INVALID_TRACE" | "MALFORMED_JSON" | "MALFORMED_URL" | "UNALIGNED" | "VALIDATION_FAILED";
                    };
                };
            };
            /** @description No token, or an unknown one (when the server has a token file) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNAUTHENTICATED";
                    };
                };
            };
            /** @description The token's scopes do not allow this route */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description Something the request names does not exist */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ROUTE_NOT_FOUND" | "UNKNOWN_DEVICE" | "UNKNOWN_DOMAIN" | "UNKNOWN_FLUSH_JOB" | "UNKNOWN_RANGE" | "UNKNOWN_SIMULATION" | "UNKNOWN_VM";
                    };
                };
            };
            /** @description The request conflicts with the current state; nothing changed */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ARCH_CHANGE" | "DOMAIN_HAS_DEVICES" | "NOT_PCI" | "PIN_OVERLAP" | "UNPIN_BISECTS" | "VM_HAS_NO_DOMAINS";
                    };
                };
            };
            /** @description The body or the batch is too large */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "BATCH_TOO_LARGE" | "BODY_TOO_LARGE";
                    };
                };
            };
            /** @description Too many requests (or event streams) for this token; retry later */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "RATE_LIMITED" | "TOO_MANY_STREAMS";
                    };
                };
            };
            /** @description The service cannot vouch for its state now (store unavailable, overloaded, or a flush not acknowledged in time); nothing changed */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FLUSH_ACK_TIMEOUT" | "NOT_READY" | "OVERLOADED" | "STORE_UNAVAILABLE";
                    };
                };
            };
        };
    };
    putDevice: {
        parameters: {
            query?: {
                /** @description Wait for the flush job and answer with its receipt */
                wait?: "true" | "false";
            };
            header?: never;
            path: {
                /** @description An id: a letter or digit, then up to 63 letters, digits, dots, underscores or hyphens */
                vmId: string;
                /** @description PCI address SSSS:BB:DD.F */
                bdf: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["PutDeviceInput"];
            };
        };
        responses: {
            /** @description The answer */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DeviceDecision"];
                };
            };
            /** @description Created: the answer */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DeviceDecision"];
                };
            };
            /** @description The request is invalid; the problem names the field */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ADDRESS_OVERFLOW" | "INVALID_CURSOR" | "INVALID_DEVICE" | "INVALID_HEX" | "INVALID_ID" | "INVALID_LENGTH" | "INVALID_PCI_ADDRESS" | "INVALID_POLICY" | "INVALID_QUIRK" | "INVALID_TRACE" | "MALFORMED_JSON" | "MALFORMED_URL" | "UNALIGNED" | "VALIDATION_FAILED";
                    };
                };
            };
            /** @description No token, or an unknown one (when the server has a token file) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNAUTHENTICATED";
                    };
                };
            };
            /** @description The token's scopes do not allow this route */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description Something the request names does not exist */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ROUTE_NOT_FOUND" | "UNKNOWN_DEVICE" | "UNKNOWN_DOMAIN" | "UNKNOWN_FLUSH_JOB" | "UNKNOWN_RANGE" | "UNKNOWN_SIMULATION" | "UNKNOWN_VM";
                    };
                };
            };
            /** @description The request conflicts with the current state; nothing changed */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ARCH_CHANGE" | "DOMAIN_HAS_DEVICES" | "NOT_PCI" | "PIN_OVERLAP" | "UNPIN_BISECTS" | "VM_HAS_NO_DOMAINS";
                    };
                };
            };
            /** @description The body or the batch is too large */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "BATCH_TOO_LARGE" | "BODY_TOO_LARGE";
                    };
                };
            };
            /** @description The body is not JSON */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /** @description Too many requests (or event streams) for this token; retry later */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "RATE_LIMITED" | "TOO_MANY_STREAMS";
                    };
                };
            };
            /** @description The service cannot vouch for its state now (store unavailable, overloaded, or a flush not acknowledged in time); nothing changed */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FLUSH_ACK_TIMEOUT" | "NOT_READY" | "OVERLOADED" | "STORE_UNAVAILABLE";
                    };
                };
            };
        };
    };
    deleteDevice: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description An id: a letter or digit, then up to 63 letters, digits, dots, underscores or hyphens */
                vmId: string;
                /** @description PCI address SSSS:BB:DD.F */
                bdf: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The answer */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DeviceDecision"];
                };
            };
            /** @description The request is invalid; the problem names the field */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ADDRESS_OVERFLOW" | "INVALID_CURSOR" | "INVALID_DEVICE" | "INVALID_HEX" | "INVALID_ID" | "INVALID_LENGTH" | "INVALID_PCI_ADDRESS" | "INVALID_POLICY" | "INVALID_QUIRK" | "INVALID_TRACE" | "MALFORMED_JSON" | "MALFORMED_URL" | "UNALIGNED" | "VALIDATION_FAILED";
                    };
                };
            };
            /** @description No token, or an unknown one (when the server has a token file) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNAUTHENTICATED";
                    };
                };
            };
            /** @description The token's scopes do not allow this route */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description Something the request names does not exist */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ROUTE_NOT_FOUND" | "UNKNOWN_DEVICE" | "UNKNOWN_DOMAIN" | "UNKNOWN_FLUSH_JOB" | "UNKNOWN_RANGE" | "UNKNOWN_SIMULATION" | "UNKNOWN_VM";
                    };
                };
            };
            /** @description The request conflicts with the current state; nothing changed */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ARCH_CHANGE" | "DOMAIN_HAS_DEVICES" | "NOT_PCI" | "PIN_OVERLAP" | "UNPIN_BISECTS" | "VM_HAS_NO_DOMAINS";
                    };
                };
            };
            /** @description The body or the batch is too large */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "BATCH_TOO_LARGE" | "BODY_TOO_LARGE";
                    };
                };
            };
            /** @description Too many requests (or event streams) for this token; retry later */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "RATE_LIMITED" | "TOO_MANY_STREAMS";
                    };
                };
            };
            /** @description The service cannot vouch for its state now (store unavailable, overloaded, or a flush not acknowledged in time); nothing changed */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FLUSH_ACK_TIMEOUT" | "NOT_READY" | "OVERLOADED" | "STORE_UNAVAILABLE";
                    };
                };
            };
        };
    };
    resetDevice: {
        parameters: {
            query?: {
                /** @description Wait for the flush job and answer with its receipt */
                wait?: "true" | "false";
            };
            header?: never;
            path: {
                /** @description An id: a letter or digit, then up to 63 letters, digits, dots, underscores or hyphens */
                vmId: string;
                /** @description PCI address SSSS:BB:DD.F */
                bdf: string;
            };
            cookie?: never;
        };
        requestBody?: {
            content: {
                "application/json": components["schemas"]["DeviceResetInput"];
            };
        };
        responses: {
            /** @description The answer */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DeviceDecision"];
                };
            };
            /** @description The request is invalid; the problem names the field */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ADDRESS_OVERFLOW" | "INVALID_CURSOR" | "INVALID_DEVICE" | "INVALID_HEX" | "INVALID_ID" | "INVALID_LENGTH" | "INVALID_PCI_ADDRESS" | "INVALID_POLICY" | "INVALID_QUIRK" | "INVALID_TRACE" | "MALFORMED_JSON" | "MALFORMED_URL" | "UNALIGNED" | "VALIDATION_FAILED";
                    };
                };
            };
            /** @description No token, or an unknown one (when the server has a token file) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNAUTHENTICATED";
                    };
                };
            };
            /** @description The token's scopes do not allow this route */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description Something the request names does not exist */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ROUTE_NOT_FOUND" | "UNKNOWN_DEVICE" | "UNKNOWN_DOMAIN" | "UNKNOWN_FLUSH_JOB" | "UNKNOWN_RANGE" | "UNKNOWN_SIMULATION" | "UNKNOWN_VM";
                    };
                };
            };
            /** @description The request conflicts with the current state; nothing changed */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ARCH_CHANGE" | "DOMAIN_HAS_DEVICES" | "NOT_PCI" | "PIN_OVERLAP" | "UNPIN_BISECTS" | "VM_HAS_NO_DOMAINS";
                    };
                };
            };
            /** @description The body or the batch is too large */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "BATCH_TOO_LARGE" | "BODY_TOO_LARGE";
                    };
                };
            };
            /** @description The body is not JSON */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /** @description Too many requests (or event streams) for this token; retry later */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "RATE_LIMITED" | "TOO_MANY_STREAMS";
                    };
                };
            };
            /** @description The service cannot vouch for its state now (store unavailable, overloaded, or a flush not acknowledged in time); nothing changed */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FLUSH_ACK_TIMEOUT" | "NOT_READY" | "OVERLOADED" | "STORE_UNAVAILABLE";
                    };
                };
            };
        };
    };
    devctl: {
        parameters: {
            query?: {
                /** @description Wait for the flush job and answer with its receipt */
                wait?: "true" | "false";
            };
            header?: never;
            path: {
                /** @description An id: a letter or digit, then up to 63 letters, digits, dots, underscores or hyphens */
                vmId: string;
                /** @description PCI address SSSS:BB:DD.F */
                bdf: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["DevctlWriteInput"];
            };
        };
        responses: {
            /** @description The answer */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["DevctlDecision"];
                };
            };
            /** @description The request is invalid; the problem names the field */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ADDRESS_OVERFLOW" | "INVALID_CURSOR" | "INVALID_DEVICE" | "INVALID_HEX" | "INVALID_ID" | "INVALID_LENGTH" | "INVALID_PCI_ADDRESS" | "INVALID_POLICY" | "INVALID_QUIRK" | "INVALID_TRACE" | "MALFORMED_JSON" | "MALFORMED_URL" | "UNALIGNED" | "VALIDATION_FAILED";
                    };
                };
            };
            /** @description No token, or an unknown one (when the server has a token file) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNAUTHENTICATED";
                    };
                };
            };
            /** @description The token's scopes do not allow this route */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description Something the request names does not exist */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ROUTE_NOT_FOUND" | "UNKNOWN_DEVICE" | "UNKNOWN_DOMAIN" | "UNKNOWN_FLUSH_JOB" | "UNKNOWN_RANGE" | "UNKNOWN_SIMULATION" | "UNKNOWN_VM";
                    };
                };
            };
            /** @description The request conflicts with the current state; nothing changed */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ARCH_CHANGE" | "DOMAIN_HAS_DEVICES" | "NOT_PCI" | "PIN_OVERLAP" | "UNPIN_BISECTS" | "VM_HAS_NO_DOMAINS";
                    };
                };
            };
            /** @description The body or the batch is too large */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "BATCH_TOO_LARGE" | "BODY_TOO_LARGE";
                    };
                };
            };
            /** @description The body is not JSON */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /** @description Too many requests (or event streams) for this token; retry later */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "RATE_LIMITED" | "TOO_MANY_STREAMS";
                    };
                };
            };
            /** @description The service cannot vouch for its state now (store unavailable, overloaded, or a flush not acknowledged in time); nothing changed */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FLUSH_ACK_TIMEOUT" | "NOT_READY" | "OVERLOADED" | "STORE_UNAVAILABLE";
                    };
                };
            };
        };
    };
    listPins: {
        parameters: {
            query?: {
                /** @description Answer from the VM's state at least as fresh as the answer that gave this revision (any earlier answer's, possibly another replica's; revisions increase with each change of a VM) */
                minRevision?: number;
                limit?: number;
                cursor?: string;
            };
            header?: never;
            path: {
                /** @description An id: a letter or digit, then up to 63 letters, digits, dots, underscores or hyphens */
                vmId: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The answer */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["PinnedRangePage"];
                };
            };
            /** @description The request is invalid; the problem names the field */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ADDRESS_OVERFLOW" | "INVALID_CURSOR" | "INVALID_DEVICE" | "INVALID_HEX" | "INVALID_ID" | "INVALID_LENGTH" | "INVALID_PCI_ADDRESS" | "INVALID_POLICY" | "INVALID_QUIRK" | "INVALID_TRACE" | "MALFORMED_JSON" | "MALFORMED_URL" | "UNALIGNED" | "VALIDATION_FAILED";
                    };
                };
            };
            /** @description No token, or an unknown one (when the server has a token file) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNAUTHENTICATED";
                    };
                };
            };
            /** @description The token's scopes do not allow this route */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description Something the request names does not exist */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ROUTE_NOT_FOUND" | "UNKNOWN_DEVICE" | "UNKNOWN_DOMAIN" | "UNKNOWN_FLUSH_JOB" | "UNKNOWN_RANGE" | "UNKNOWN_SIMULATION" | "UNKNOWN_VM";
                    };
                };
            };
            /** @description Too many requests (or event streams) for this token; retry later */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "RATE_LIMITED" | "TOO_MANY_STREAMS";
                    };
                };
            };
            /** @description The service cannot vouch for its state now (store unavailable, overloaded, or a flush not acknowledged in time); nothing changed */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FLUSH_ACK_TIMEOUT" | "NOT_READY" | "OVERLOADED" | "STORE_UNAVAILABLE";
                    };
                };
            };
        };
    };
    pin: {
        parameters: {
            query?: {
                /** @description Wait for the flush job and answer with its receipt */
                wait?: "true" | "false";
            };
            header?: never;
            path: {
                /** @description An id: a letter or digit, then up to 63 letters, digits, dots, underscores or hyphens */
                vmId: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["PinRequestInput"];
            };
        };
        responses: {
            /** @description The answer */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Decision"];
                };
            };
            /** @description The request is invalid; the problem names the field */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ADDRESS_OVERFLOW" | "INVALID_CURSOR" | "INVALID_DEVICE" | "INVALID_HEX" | "INVALID_ID" | "INVALID_LENGTH" | "INVALID_PCI_ADDRESS" | "INVALID_POLICY" | "INVALID_QUIRK" | "INVALID_TRACE" | "MALFORMED_JSON" | "MALFORMED_URL" | "UNALIGNED" | "VALIDATION_FAILED";
                    };
                };
            };
            /** @description No token, or an unknown one (when the server has a token file) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNAUTHENTICATED";
                    };
                };
            };
            /** @description The token's scopes do not allow this route */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description Something the request names does not exist */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ROUTE_NOT_FOUND" | "UNKNOWN_DEVICE" | "UNKNOWN_DOMAIN" | "UNKNOWN_FLUSH_JOB" | "UNKNOWN_RANGE" | "UNKNOWN_SIMULATION" | "UNKNOWN_VM";
                    };
                };
            };
            /** @description The request conflicts with the current state; nothing changed */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ARCH_CHANGE" | "DOMAIN_HAS_DEVICES" | "NOT_PCI" | "PIN_OVERLAP" | "UNPIN_BISECTS" | "VM_HAS_NO_DOMAINS";
                    };
                };
            };
            /** @description The body or the batch is too large */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "BATCH_TOO_LARGE" | "BODY_TOO_LARGE";
                    };
                };
            };
            /** @description The body is not JSON */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /** @description Too many requests (or event streams) for this token; retry later */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "RATE_LIMITED" | "TOO_MANY_STREAMS";
                    };
                };
            };
            /** @description The service cannot vouch for its state now (store unavailable, overloaded, or a flush not acknowledged in time); nothing changed */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FLUSH_ACK_TIMEOUT" | "NOT_READY" | "OVERLOADED" | "STORE_UNAVAILABLE";
                    };
                };
            };
        };
    };
    unpin: {
        parameters: {
            query?: {
                /** @description Wait for the flush job and answer with its receipt */
                wait?: "true" | "false";
            };
            header?: never;
            path: {
                /** @description An id: a letter or digit, then up to 63 letters, digits, dots, underscores or hyphens */
                vmId: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["UnpinRequestInput"];
            };
        };
        responses: {
            /** @description The answer */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Decision"];
                };
            };
            /** @description The request is invalid; the problem names the field */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ADDRESS_OVERFLOW" | "INVALID_CURSOR" | "INVALID_DEVICE" | "INVALID_HEX" | "INVALID_ID" | "INVALID_LENGTH" | "INVALID_PCI_ADDRESS" | "INVALID_POLICY" | "INVALID_QUIRK" | "INVALID_TRACE" | "MALFORMED_JSON" | "MALFORMED_URL" | "UNALIGNED" | "VALIDATION_FAILED";
                    };
                };
            };
            /** @description No token, or an unknown one (when the server has a token file) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNAUTHENTICATED";
                    };
                };
            };
            /** @description The token's scopes do not allow this route */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description Something the request names does not exist */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ROUTE_NOT_FOUND" | "UNKNOWN_DEVICE" | "UNKNOWN_DOMAIN" | "UNKNOWN_FLUSH_JOB" | "UNKNOWN_RANGE" | "UNKNOWN_SIMULATION" | "UNKNOWN_VM";
                    };
                };
            };
            /** @description The request conflicts with the current state; nothing changed */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ARCH_CHANGE" | "DOMAIN_HAS_DEVICES" | "NOT_PCI" | "PIN_OVERLAP" | "UNPIN_BISECTS" | "VM_HAS_NO_DOMAINS";
                    };
                };
            };
            /** @description The body or the batch is too large */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "BATCH_TOO_LARGE" | "BODY_TOO_LARGE";
                    };
                };
            };
            /** @description The body is not JSON */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /** @description Too many requests (or event streams) for this token; retry later */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "RATE_LIMITED" | "TOO_MANY_STREAMS";
                    };
                };
            };
            /** @description The service cannot vouch for its state now (store unavailable, overloaded, or a flush not acknowledged in time); nothing changed */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FLUSH_ACK_TIMEOUT" | "NOT_READY" | "OVERLOADED" | "STORE_UNAVAILABLE";
                    };
                };
            };
        };
    };
    mustFlush: {
        parameters: {
            query?: {
                /** @description Answer from the VM's state at least as fresh as the answer that gave this revision (any earlier answer's, possibly another replica's; revisions increase with each change of a VM) */
                minRevision?: number;
            };
            header?: never;
            path: {
                /** @description An id: a letter or digit, then up to 63 letters, digits, dots, underscores or hyphens */
                vmId: string;
            };
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["FlushQueryInput"];
            };
        };
        responses: {
            /** @description The answer */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["FlushQueryAnswer"];
                };
            };
            /** @description The request is invalid; the problem names the field */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ADDRESS_OVERFLOW" | "INVALID_CURSOR" | "INVALID_DEVICE" | "INVALID_HEX" | "INVALID_ID" | "INVALID_LENGTH" | "INVALID_PCI_ADDRESS" | "INVALID_POLICY" | "INVALID_QUIRK" | "INVALID_TRACE" | "MALFORMED_JSON" | "MALFORMED_URL" | "UNALIGNED" | "VALIDATION_FAILED";
                    };
                };
            };
            /** @description No token, or an unknown one (when the server has a token file) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNAUTHENTICATED";
                    };
                };
            };
            /** @description The token's scopes do not allow this route */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description Something the request names does not exist */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ROUTE_NOT_FOUND" | "UNKNOWN_DEVICE" | "UNKNOWN_DOMAIN" | "UNKNOWN_FLUSH_JOB" | "UNKNOWN_RANGE" | "UNKNOWN_SIMULATION" | "UNKNOWN_VM";
                    };
                };
            };
            /** @description The request conflicts with the current state; nothing changed */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ARCH_CHANGE" | "DOMAIN_HAS_DEVICES" | "NOT_PCI" | "PIN_OVERLAP" | "UNPIN_BISECTS" | "VM_HAS_NO_DOMAINS";
                    };
                };
            };
            /** @description The body or the batch is too large */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "BATCH_TOO_LARGE" | "BODY_TOO_LARGE";
                    };
                };
            };
            /** @description The body is not JSON */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /** @description Too many requests (or event streams) for this token; retry later */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "RATE_LIMITED" | "TOO_MANY_STREAMS";
                    };
                };
            };
            /** @description The service cannot vouch for its state now (store unavailable, overloaded, or a flush not acknowledged in time); nothing changed */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FLUSH_ACK_TIMEOUT" | "NOT_READY" | "OVERLOADED" | "STORE_UNAVAILABLE";
                    };
                };
            };
        };
    };
    getFlushJob: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                jobId: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The answer */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["FlushJob"];
                };
            };
            /** @description No token, or an unknown one (when the server has a token file) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNAUTHENTICATED";
                    };
                };
            };
            /** @description The token's scopes do not allow this route */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description Something the request names does not exist */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ROUTE_NOT_FOUND" | "UNKNOWN_DEVICE" | "UNKNOWN_DOMAIN" | "UNKNOWN_FLUSH_JOB" | "UNKNOWN_RANGE" | "UNKNOWN_SIMULATION" | "UNKNOWN_VM";
                    };
                };
            };
            /** @description Too many requests (or event streams) for this token; retry later */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "RATE_LIMITED" | "TOO_MANY_STREAMS";
                    };
                };
            };
            /** @description The service cannot vouch for its state now (store unavailable, overloaded, or a flush not acknowledged in time); nothing changed */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FLUSH_ACK_TIMEOUT" | "NOT_READY" | "OVERLOADED" | "STORE_UNAVAILABLE";
                    };
                };
            };
        };
    };
    ack: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                jobId: string;
            };
            cookie?: never;
        };
        requestBody?: {
            content: {
                "application/json": components["schemas"]["FlushAckInput"];
            };
        };
        responses: {
            /** @description The answer */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["FlushJob"];
                };
            };
            /** @description The request is invalid; the problem names the field */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ADDRESS_OVERFLOW" | "INVALID_CURSOR" | "INVALID_DEVICE" | "INVALID_HEX" | "INVALID_ID" | "INVALID_LENGTH" | "INVALID_PCI_ADDRESS" | "INVALID_POLICY" | "INVALID_QUIRK" | "INVALID_TRACE" | "MALFORMED_JSON" | "MALFORMED_URL" | "UNALIGNED" | "VALIDATION_FAILED";
                    };
                };
            };
            /** @description No token, or an unknown one (when the server has a token file) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNAUTHENTICATED";
                    };
                };
            };
            /** @description The token's scopes do not allow this route */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description Something the request names does not exist */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ROUTE_NOT_FOUND" | "UNKNOWN_DEVICE" | "UNKNOWN_DOMAIN" | "UNKNOWN_FLUSH_JOB" | "UNKNOWN_RANGE" | "UNKNOWN_SIMULATION" | "UNKNOWN_VM";
                    };
                };
            };
            /** @description The request conflicts with the current state; nothing changed */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ARCH_CHANGE" | "DOMAIN_HAS_DEVICES" | "NOT_PCI" | "PIN_OVERLAP" | "UNPIN_BISECTS" | "VM_HAS_NO_DOMAINS";
                    };
                };
            };
            /** @description The body or the batch is too large */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "BATCH_TOO_LARGE" | "BODY_TOO_LARGE";
                    };
                };
            };
            /** @description The body is not JSON */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /** @description Too many requests (or event streams) for this token; retry later */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "RATE_LIMITED" | "TOO_MANY_STREAMS";
                    };
                };
            };
            /** @description The service cannot vouch for its state now (store unavailable, overloaded, or a flush not acknowledged in time); nothing changed */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FLUSH_ACK_TIMEOUT" | "NOT_READY" | "OVERLOADED" | "STORE_UNAVAILABLE";
                    };
                };
            };
        };
    };
    listFlushJobRanges: {
        parameters: {
            query?: {
                limit?: number;
                cursor?: string;
            };
            header?: never;
            path: {
                jobId: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The answer */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["HostRangePage"];
                };
            };
            /** @description The request is invalid; the problem names the field */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ADDRESS_OVERFLOW" | "INVALID_CURSOR" | "INVALID_DEVICE" | "INVALID_HEX" | "INVALID_ID" | "INVALID_LENGTH" | "INVALID_PCI_ADDRESS" | "INVALID_POLICY" | "INVALID_QUIRK" | "INVALID_TRACE" | "MALFORMED_JSON" | "MALFORMED_URL" | "UNALIGNED" | "VALIDATION_FAILED";
                    };
                };
            };
            /** @description No token, or an unknown one (when the server has a token file) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNAUTHENTICATED";
                    };
                };
            };
            /** @description The token's scopes do not allow this route */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description Something the request names does not exist */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ROUTE_NOT_FOUND" | "UNKNOWN_DEVICE" | "UNKNOWN_DOMAIN" | "UNKNOWN_FLUSH_JOB" | "UNKNOWN_RANGE" | "UNKNOWN_SIMULATION" | "UNKNOWN_VM";
                    };
                };
            };
            /** @description Too many requests (or event streams) for this token; retry later */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "RATE_LIMITED" | "TOO_MANY_STREAMS";
                    };
                };
            };
            /** @description The service cannot vouch for its state now (store unavailable, overloaded, or a flush not acknowledged in time); nothing changed */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FLUSH_ACK_TIMEOUT" | "NOT_READY" | "OVERLOADED" | "STORE_UNAVAILABLE";
                    };
                };
            };
        };
    };
    listFlushJobs: {
        parameters: {
            query?: {
                /** @description Answer from the VM's state at least as fresh as the answer that gave this revision (any earlier answer's, possibly another replica's; revisions increase with each change of a VM) */
                minRevision?: number;
                limit?: number;
                cursor?: string;
            };
            header?: never;
            path: {
                /** @description An id: a letter or digit, then up to 63 letters, digits, dots, underscores or hyphens */
                vmId: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The answer */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["FlushJobPage"];
                };
            };
            /** @description The request is invalid; the problem names the field */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ADDRESS_OVERFLOW" | "INVALID_CURSOR" | "INVALID_DEVICE" | "INVALID_HEX" | "INVALID_ID" | "INVALID_LENGTH" | "INVALID_PCI_ADDRESS" | "INVALID_POLICY" | "INVALID_QUIRK" | "INVALID_TRACE" | "MALFORMED_JSON" | "MALFORMED_URL" | "UNALIGNED" | "VALIDATION_FAILED";
                    };
                };
            };
            /** @description No token, or an unknown one (when the server has a token file) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNAUTHENTICATED";
                    };
                };
            };
            /** @description The token's scopes do not allow this route */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description Something the request names does not exist */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ROUTE_NOT_FOUND" | "UNKNOWN_DEVICE" | "UNKNOWN_DOMAIN" | "UNKNOWN_FLUSH_JOB" | "UNKNOWN_RANGE" | "UNKNOWN_SIMULATION" | "UNKNOWN_VM";
                    };
                };
            };
            /** @description Too many requests (or event streams) for this token; retry later */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "RATE_LIMITED" | "TOO_MANY_STREAMS";
                    };
                };
            };
            /** @description The service cannot vouch for its state now (store unavailable, overloaded, or a flush not acknowledged in time); nothing changed */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FLUSH_ACK_TIMEOUT" | "NOT_READY" | "OVERLOADED" | "STORE_UNAVAILABLE";
                    };
                };
            };
        };
    };
    events: {
        parameters: {
            query?: never;
            header?: {
                "last-event-id"?: string;
            };
            path: {
                /** @description An id: a letter or digit, then up to 63 letters, digits, dots, underscores or hyphens */
                vmId: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The VM's events, as Server-Sent Events */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "text/event-stream": components["schemas"]["DecisionEvent"] | components["schemas"]["PolicyEvent"] | components["schemas"]["DeletedEvent"] | components["schemas"]["FlushJobEvent"] | components["schemas"]["ResetEvent"] | components["schemas"]["DroppedEvent"];
                };
            };
            /** @description The request is invalid; the problem names the field */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ADDRESS_OVERFLOW" | "INVALID_CURSOR" | "INVALID_DEVICE" | "INVALID_HEX" | "INVALID_ID" | "INVALID_LENGTH" | "INVALID_PCI_ADDRESS" | "INVALID_POLICY" | "INVALID_QUIRK" | "INVALID_TRACE" | "MALFORMED_JSON" | "MALFORMED_URL" | "UNALIGNED" | "VALIDATION_FAILED";
                    };
                };
            };
            /** @description No token, or an unknown one (when the server has a token file) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNAUTHENTICATED";
                    };
                };
            };
            /** @description The token's scopes do not allow this route */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description Something the request names does not exist */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ROUTE_NOT_FOUND" | "UNKNOWN_DEVICE" | "UNKNOWN_DOMAIN" | "UNKNOWN_FLUSH_JOB" | "UNKNOWN_RANGE" | "UNKNOWN_SIMULATION" | "UNKNOWN_VM";
                    };
                };
            };
            /** @description Too many requests (or event streams) for this token; retry later */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "RATE_LIMITED" | "TOO_MANY_STREAMS";
                    };
                };
            };
            /** @description The service cannot vouch for its state now (store unavailable, overloaded, or a flush not acknowledged in time); nothing changed */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FLUSH_ACK_TIMEOUT" | "NOT_READY" | "OVERLOADED" | "STORE_UNAVAILABLE";
                    };
                };
            };
        };
    };
    getQuirks: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The answer */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["QuirkListAnswer"];
                };
            };
            /** @description No token, or an unknown one (when the server has a token file) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNAUTHENTICATED";
                    };
                };
            };
            /** @description The token's scopes do not allow this route */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description Too many requests (or event streams) for this token; retry later */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "RATE_LIMITED" | "TOO_MANY_STREAMS";
                    };
                };
            };
            /** @description The service cannot vouch for its state now (store unavailable, overloaded, or a flush not acknowledged in time); nothing changed */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FLUSH_ACK_TIMEOUT" | "NOT_READY" | "OVERLOADED" | "STORE_UNAVAILABLE";
                    };
                };
            };
        };
    };
    putQuirks: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["QuirkListInput"];
            };
        };
        responses: {
            /** @description The answer */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["PutQuirksAnswer"];
                };
            };
            /** @description The request is invalid; the problem names the field */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ADDRESS_OVERFLOW" | "INVALID_CURSOR" | "INVALID_DEVICE" | "INVALID_HEX" | "INVALID_ID" | "INVALID_LENGTH" | "INVALID_PCI_ADDRESS" | "INVALID_POLICY" | "INVALID_QUIRK" | "INVALID_TRACE" | "MALFORMED_JSON" | "MALFORMED_URL" | "UNALIGNED" | "VALIDATION_FAILED";
                    };
                };
            };
            /** @description No token, or an unknown one (when the server has a token file) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNAUTHENTICATED";
                    };
                };
            };
            /** @description The token's scopes do not allow this route */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description The body is not JSON */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /** @description Too many requests (or event streams) for this token; retry later */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "RATE_LIMITED" | "TOO_MANY_STREAMS";
                    };
                };
            };
            /** @description The service cannot vouch for its state now (store unavailable, overloaded, or a flush not acknowledged in time); nothing changed */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FLUSH_ACK_TIMEOUT" | "NOT_READY" | "OVERLOADED" | "STORE_UNAVAILABLE";
                    };
                };
            };
        };
    };
    addQuirks: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["QuirkAdditionsInput"];
            };
        };
        responses: {
            /** @description The answer */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["PutQuirksAnswer"];
                };
            };
            /** @description The request is invalid; the problem names the field */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ADDRESS_OVERFLOW" | "INVALID_CURSOR" | "INVALID_DEVICE" | "INVALID_HEX" | "INVALID_ID" | "INVALID_LENGTH" | "INVALID_PCI_ADDRESS" | "INVALID_POLICY" | "INVALID_QUIRK" | "INVALID_TRACE" | "MALFORMED_JSON" | "MALFORMED_URL" | "UNALIGNED" | "VALIDATION_FAILED";
                    };
                };
            };
            /** @description No token, or an unknown one (when the server has a token file) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNAUTHENTICATED";
                    };
                };
            };
            /** @description The token's scopes do not allow this route */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description The body is not JSON */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /** @description Too many requests (or event streams) for this token; retry later */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "RATE_LIMITED" | "TOO_MANY_STREAMS";
                    };
                };
            };
            /** @description The service cannot vouch for its state now (store unavailable, overloaded, or a flush not acknowledged in time); nothing changed */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FLUSH_ACK_TIMEOUT" | "NOT_READY" | "OVERLOADED" | "STORE_UNAVAILABLE";
                    };
                };
            };
        };
    };
    getPolicy: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The answer */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["PolicyDefaults"];
                };
            };
            /** @description No token, or an unknown one (when the server has a token file) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNAUTHENTICATED";
                    };
                };
            };
            /** @description The token's scopes do not allow this route */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description Too many requests (or event streams) for this token; retry later */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "RATE_LIMITED" | "TOO_MANY_STREAMS";
                    };
                };
            };
            /** @description The service cannot vouch for its state now (store unavailable, overloaded, or a flush not acknowledged in time); nothing changed */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FLUSH_ACK_TIMEOUT" | "NOT_READY" | "OVERLOADED" | "STORE_UNAVAILABLE";
                    };
                };
            };
        };
    };
    listAudit: {
        parameters: {
            query?: {
                vmId?: string;
                /** @description Only changes at or after this time */
                since?: string;
                limit?: number;
                cursor?: string;
            };
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The answer */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["AuditPage"];
                };
            };
            /** @description The request is invalid; the problem names the field */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ADDRESS_OVERFLOW" | "INVALID_CURSOR" | "INVALID_DEVICE" | "INVALID_HEX" | "INVALID_ID" | "INVALID_LENGTH" | "INVALID_PCI_ADDRESS" | "INVALID_POLICY" | "INVALID_QUIRK" | "INVALID_TRACE" | "MALFORMED_JSON" | "MALFORMED_URL" | "UNALIGNED" | "VALIDATION_FAILED";
                    };
                };
            };
            /** @description No token, or an unknown one (when the server has a token file) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNAUTHENTICATED";
                    };
                };
            };
            /** @description The token's scopes do not allow this route */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description Too many requests (or event streams) for this token; retry later */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "RATE_LIMITED" | "TOO_MANY_STREAMS";
                    };
                };
            };
            /** @description The service cannot vouch for its state now (store unavailable, overloaded, or a flush not acknowledged in time); nothing changed */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FLUSH_ACK_TIMEOUT" | "NOT_READY" | "OVERLOADED" | "STORE_UNAVAILABLE";
                    };
                };
            };
        };
    };
    simulate: {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        requestBody: {
            content: {
                "application/json": components["schemas"]["SimulationRequestInput"];
            };
        };
        responses: {
            /** @description Created: the answer */
            201: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Simulation"];
                };
            };
            /** @description The request is invalid; the problem names the field */
            400: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ADDRESS_OVERFLOW" | "INVALID_CURSOR" | "INVALID_DEVICE" | "INVALID_HEX" | "INVALID_ID" | "INVALID_LENGTH" | "INVALID_PCI_ADDRESS" | "INVALID_POLICY" | "INVALID_QUIRK" | "INVALID_TRACE" | "MALFORMED_JSON" | "MALFORMED_URL" | "UNALIGNED" | "VALIDATION_FAILED";
                    };
                };
            };
            /** @description No token, or an unknown one (when the server has a token file) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNAUTHENTICATED";
                    };
                };
            };
            /** @description The token's scopes do not allow this route */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description Something the request names does not exist */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ROUTE_NOT_FOUND" | "UNKNOWN_DEVICE" | "UNKNOWN_DOMAIN" | "UNKNOWN_FLUSH_JOB" | "UNKNOWN_RANGE" | "UNKNOWN_SIMULATION" | "UNKNOWN_VM";
                    };
                };
            };
            /** @description The request conflicts with the current state; nothing changed */
            409: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ARCH_CHANGE" | "DOMAIN_HAS_DEVICES" | "NOT_PCI" | "PIN_OVERLAP" | "UNPIN_BISECTS" | "VM_HAS_NO_DOMAINS";
                    };
                };
            };
            /** @description The body or the batch is too large */
            413: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "BATCH_TOO_LARGE" | "BODY_TOO_LARGE";
                    };
                };
            };
            /** @description The body is not JSON */
            415: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNSUPPORTED_MEDIA_TYPE";
                    };
                };
            };
            /** @description Too many requests (or event streams) for this token; retry later */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "RATE_LIMITED" | "TOO_MANY_STREAMS";
                    };
                };
            };
            /** @description The service cannot vouch for its state now (store unavailable, overloaded, or a flush not acknowledged in time); nothing changed */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FLUSH_ACK_TIMEOUT" | "NOT_READY" | "OVERLOADED" | "STORE_UNAVAILABLE";
                    };
                };
            };
        };
    };
    getSimulation: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description The answer */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/json": components["schemas"]["Simulation"];
                };
            };
            /** @description No token, or an unknown one (when the server has a token file) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNAUTHENTICATED";
                    };
                };
            };
            /** @description The token's scopes do not allow this route */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description Something the request names does not exist */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ROUTE_NOT_FOUND" | "UNKNOWN_DEVICE" | "UNKNOWN_DOMAIN" | "UNKNOWN_FLUSH_JOB" | "UNKNOWN_RANGE" | "UNKNOWN_SIMULATION" | "UNKNOWN_VM";
                    };
                };
            };
            /** @description Too many requests (or event streams) for this token; retry later */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "RATE_LIMITED" | "TOO_MANY_STREAMS";
                    };
                };
            };
            /** @description The service cannot vouch for its state now (store unavailable, overloaded, or a flush not acknowledged in time); nothing changed */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FLUSH_ACK_TIMEOUT" | "NOT_READY" | "OVERLOADED" | "STORE_UNAVAILABLE";
                    };
                };
            };
        };
    };
    getSimulationChart: {
        parameters: {
            query?: never;
            header?: never;
            path: {
                id: string;
            };
            cookie?: never;
        };
        requestBody?: never;
        responses: {
            /** @description SVG document */
            200: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "image/svg+xml": string;
                };
            };
            /** @description No token, or an unknown one (when the server has a token file) */
            401: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "UNAUTHENTICATED";
                    };
                };
            };
            /** @description The token's scopes do not allow this route */
            403: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FORBIDDEN";
                    };
                };
            };
            /** @description Something the request names does not exist */
            404: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "ROUTE_NOT_FOUND" | "UNKNOWN_DEVICE" | "UNKNOWN_DOMAIN" | "UNKNOWN_FLUSH_JOB" | "UNKNOWN_RANGE" | "UNKNOWN_SIMULATION" | "UNKNOWN_VM";
                    };
                };
            };
            /** @description Too many requests (or event streams) for this token; retry later */
            429: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "RATE_LIMITED" | "TOO_MANY_STREAMS";
                    };
                };
            };
            /** @description The service cannot vouch for its state now (store unavailable, overloaded, or a flush not acknowledged in time); nothing changed */
            503: {
                headers: {
                    [name: string]: unknown;
                };
                content: {
                    "application/problem+json": components["schemas"]["Problem"] & {
                        /** @enum {string} */
                        code?: "FLUSH_ACK_TIMEOUT" | "NOT_READY" | "OVERLOADED" | "STORE_UNAVAILABLE";
                    };
                };
            };
        };
    };
}

#!/usr/bin/env python3
"""Writes the hand-made fuzz seeds into fuzz/seeds/<target>/.

Every seed here is written by this script from the formats' documented
shapes (docs/FORMATS.md, linux/cn_proc.h); no third-party file is copied.
Real files from ../shared are added at run time by fuzz/run.sh instead.
"""
import io
import os
import struct
import sys
import zipfile

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "seeds")


def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- native_lines: hostile shapes beside the demo recording -------------------
put("native_lines", "forms",
    '# comment\n\n'
    '{"kind":"start","time":132404548233600000,"pid":4,"image":"System"}\n'
    '{"kind":"start","time":"2020-09-20T21:09:08.7060000+05:30","pid":6248,"ppid":1204,'
    '"key":{"sequence":7},"parent_key":{"guid":"{d273d0f0-c4f4-5f67-a607-000000000800}"},'
    '"image":"C:\\\\Windows\\\\System32\\\\wsmprovhost.exe","session_id":0,"host":"WS6"}\n'
    '{"kind":"stop","time":"9999-12-31T23:59:59.9999999Z","pid":6248,"exit_code":4294967295}\r\n'
    '{"kind":"start","time":"1601-01-01T00:00:00Z","pid":0,"ppid":0,"image":"\\u0000x"}\n')

# --- jsonlog_lines: NXLog flat and Winlogbeat/ECS -----------------------------
NX_SYSMON = ('{"EventID":1,"Channel":"Microsoft-Windows-Sysmon/Operational","Hostname":"WS6",'
             '"EventTime":"2020-09-20 17:09:08","UtcTime":"2020-09-20 21:09:08.706",'
             '"ProcessGuid":"{d273d0f0-c4f4-5f67-a607-000000000800}","ProcessId":"6248",'
             '"ParentProcessId":"960","Image":"C:\\\\Windows\\\\System32\\\\wsmprovhost.exe",'
             '"ParentImage":"C:\\\\Windows\\\\System32\\\\svchost.exe","CommandLine":"wsmprovhost.exe -Embedding",'
             '"User":"CORP\\\\alice","@timestamp":"2020-09-20T21:09:09.817Z"}')
NX_SEC = ('{"EventID":4688,"Channel":"security","Hostname":"WS6","EventTime":"2020-09-20 17:09:08",'
          '"NewProcessId":"0x234c","ProcessId":"0x3c0","NewProcessName":"C:\\\\Windows\\\\System32\\\\wsmprovhost.exe",'
          '"ParentProcessName":"C:\\\\Windows\\\\System32\\\\svchost.exe","SubjectDomainName":"CORP",'
          '"SubjectUserName":"WS6$","@timestamp":"2020-09-20T21:09:09.825Z"}')
NX_SEC_STOP = ('{"EventID":4689,"Channel":"Security","Hostname":"WS6","EventTime":"2020-09-20 17:10:00",'
               '"ProcessId":"0x234c","ProcessName":"C:\\\\Windows\\\\System32\\\\wsmprovhost.exe","Status":"0x0"}')
NX_SYSMON_STOP = ('{"EventID":5,"Channel":"Microsoft-Windows-Sysmon/Operational","Hostname":"WS6",'
                  '"UtcTime":"2020-09-20 21:10:00.000","ProcessGuid":"{d273d0f0-c4f4-5f67-a607-000000000800}",'
                  '"ProcessId":"6248","Image":"C:\\\\Windows\\\\System32\\\\wsmprovhost.exe"}')
ECS = ('{"@timestamp":"2020-09-20T21:09:08.706Z","winlog":{"event_id":1,"channel":'
       '"Microsoft-Windows-Sysmon/Operational","computer_name":"ws6.corp","provider_name":'
       '"Microsoft-Windows-Sysmon","event_data":{"UtcTime":"2020-09-20 21:09:08.706","ProcessId":"6300",'
       '"ParentProcessId":"6248","Image":"C:\\\\Windows\\\\System32\\\\whoami.exe",'
       '"ParentImage":"C:\\\\Windows\\\\System32\\\\wsmprovhost.exe"}}}')
NATIVE = '{"kind":"start","time":"2020-01-01T00:00:00Z","pid":4,"image":"System"}'
for i, line in enumerate([NX_SYSMON, NX_SEC, NX_SEC_STOP, NX_SYSMON_STOP, ECS, NATIVE]):
    put("jsonlog_lines", f"line-{i}", line + "\n")
lines = "\n".join([NX_SYSMON, NX_SEC, '{"EventID":4624,"Channel":"Security"}', "not json",
                   NX_SYSMON_STOP, NX_SEC_STOP, ECS, NATIVE]) + "\n"
put("jsonlog_lines", "mixed", lines)

# --- jsonlog_zip: the same lines zipped (deflate and stored) ------------------
def member(z, name, data, method):
    # A fixed date keeps the seeds byte-identical from run to run.
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.compress_type = method
    z.writestr(info, data)


for method, tag in [(zipfile.ZIP_DEFLATED, "deflate"), (zipfile.ZIP_STORED, "stored")]:
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", method) as z:
        member(z, "logs/a.json", lines, method)
        member(z, "b.txt", "skipped", method)
        member(z, "dir/", "", method)
    put("jsonlog_zip", f"lines-{tag}.zip", b.getvalue())
# A small bomb: 4 MiB of newlines in one deflate member (ratio ~1000).
b = io.BytesIO()
with zipfile.ZipFile(b, "w", zipfile.ZIP_DEFLATED) as z:
    member(z, "bomb.json", "\n" * (4 << 20), zipfile.ZIP_DEFLATED)
put("jsonlog_zip", "bomb.zip", b.getvalue())

# --- evtx_record: rendered records as the EVTX parser emits them --------------
SYS = ('{{"Event":{{"System":{{"Provider":{{"#attributes":{{"Name":"{prov}"}}}},"EventID":{eid},'
       '"TimeCreated":{{"#attributes":{{"SystemTime":"2019-05-16T01:38:19.6268707Z"}}}},'
       '"Channel":"{chan}","Computer":"DC1.corp.local"}},"EventData":{data}}}}}')
recs = {
    "sysmon-1": ("Microsoft-Windows-Sysmon", "1", "Microsoft-Windows-Sysmon/Operational",
                 '{"UtcTime":"2019-05-16 01:38:19.616","ProcessGuid":"{dfae8213-bd78-5cdc-0000-0010c7fe1200}",'
                 '"ProcessId":2936,"Image":"C:\\\\Windows\\\\System32\\\\HOSTNAME.EXE","ParentProcessId":3332,'
                 '"ParentProcessGuid":"{dfae8213-bd78-5cdc-0000-0010c7fe1201}",'
                 '"ParentImage":"C:\\\\Windows\\\\System32\\\\wsmprovhost.exe","TerminalSessionId":0,'
                 '"CommandLine":"hostname","User":"CORP\\\\bob"}'),
    "sysmon-5": ("Microsoft-Windows-Sysmon", "5", "Microsoft-Windows-Sysmon/Operational",
                 '{"UtcTime":"2019-05-16 01:38:20.000","ProcessGuid":"{dfae8213-bd78-5cdc-0000-0010c7fe1200}",'
                 '"ProcessId":2936,"Image":"C:\\\\Windows\\\\System32\\\\HOSTNAME.EXE"}'),
    "security-4688": ("Microsoft-Windows-Security-Auditing",
                      '{"#attributes":{"Qualifiers":0},"#text":4688}', "Security",
                      '{"NewProcessId":"0x234c","ProcessId":"0x3c0","NewProcessName":"C:\\\\w.exe",'
                      '"ParentProcessName":"C:\\\\Windows\\\\System32\\\\svchost.exe","SubjectUserName":"x",'
                      '"SubjectDomainName":"D","CommandLine":"w.exe -a"}'),
    "security-4689": ("Microsoft-Windows-Security-Auditing", "4689", "Security",
                      '{"ProcessId":"0x10","ProcessName":"C:\\\\a.exe","Status":"0x1"}'),
    "sysmon-3": ("Microsoft-Windows-Sysmon", "3", "Microsoft-Windows-Sysmon/Operational", "null"),
}
for name, (prov, eid, chan, data) in recs.items():
    put("evtx_record", name, SYS.format(prov=prov, eid=eid, chan=chan, data=data))

# --- cn_proc: netlink datagrams of the process-events connector ---------------
NLMSG_ERROR, NLMSG_DONE, NLMSG_OVERRUN = 2, 3, 4


def nl(typ, payload):
    return struct.pack("=IHHII", 16 + len(payload), typ, 0, 1, 0) + payload


def cn(data, seq=5, ack=0, idx=1, val=1):
    return struct.pack("=IIIIHH", idx, val, seq, ack, len(data), 0) + data


def ev(what, body, cpu=1, ts=123456789):
    return struct.pack("=IIQ", what, cpu, ts) + body


fork = nl(NLMSG_DONE, cn(ev(1, struct.pack("=IIII", 100, 100, 101, 101))))
exec_ = nl(NLMSG_DONE, cn(ev(2, struct.pack("=II", 101, 101))))
exit_ = nl(NLMSG_DONE, cn(ev(0x80000000, struct.pack("=IIII", 101, 101, 256, 17))))
ack = nl(NLMSG_DONE, cn(ev(0, struct.pack("=I", 0)), ack=8))
comm = nl(NLMSG_DONE, cn(ev(0x200, struct.pack("=II16s", 101, 101, b"pwsh"))))
err = nl(NLMSG_ERROR, struct.pack("=i", -1) + b"\0" * 16)
put("cn_proc", "fork", fork)
put("cn_proc", "exec", exec_)
put("cn_proc", "exit", exit_)
put("cn_proc", "ack", ack)
put("cn_proc", "comm", comm)
put("cn_proc", "error", err)
put("cn_proc", "overrun", nl(NLMSG_OVERRUN, b""))
put("cn_proc", "three-in-one", fork + exec_ + exit_)
put("cn_proc", "stat", b"1234 (a) b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 5555 1 2 3\n")
put("cn_proc", "cmdline", b"pwsh\0-NoLogo\0a b\0\"q\"\0\\x\0\0")

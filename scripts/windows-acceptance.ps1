<#
.SYNOPSIS
  Acceptance checks of `wsmwatch live`, the Windows service and the Event Log
  output on a real Windows 10/11 or Server 2016+ host (issues 15 and 14).
  Prints PASS, FAIL or SKIP for every step and exits 1 if any step failed.

.DESCRIPTION
  Run from an elevated PowerShell (5.1 or 7). The script enables WinRM for the
  remote-session steps and restores its previous state at the end. Every step
  names the defect of issue 15 it guards (D1..D8); docs/WINDOWS.md has the
  same table. Steps that need an interactive console window (window close)
  report SKIP under -Ci (hosted CI runners have no desktop). The step
  service-reboot needs a logoff and a reboot between its runs: it runs only
  when named alone (-Only service-reboot), three times.

.PARAMETER Exe
  Path to wsmwatch.exe (default: target\release\examples\wsmwatch.exe).

.PARAMETER Work
  Folder for alerts, recordings and logs (default: a new temp folder).

.PARAMETER Ci
  Skip the steps a hosted runner cannot do.

.PARAMETER Only
  Run only the steps whose names match one of these wildcards.
#>
[CmdletBinding()]
param(
    [string]$Exe = (Join-Path $PSScriptRoot '..\target\release\examples\wsmwatch.exe'),
    [string]$Work = (Join-Path ([IO.Path]::GetTempPath()) ("wsmwatch-acceptance-" + [guid]::NewGuid().ToString('N').Substring(0, 8))),
    [switch]$Ci,
    [string[]]$Only = @('*')
)

# Version 1: alerts and records omit absent fields, which stricter modes
# would turn into errors when a filter looks at them.
Set-StrictMode -Version 1.0
# 'Continue', not 'Stop': Windows PowerShell 5.1 turns any stderr line of a
# native command (taskkill, logman) into a terminating error under 'Stop'.
# Steps fail through Assert-Ww (throw) and -ErrorAction Stop where a cmdlet
# must succeed.
$ErrorActionPreference = 'Continue'
$Session = 'wsmwatch-kernel-process'
$ServiceName = 'wsmwatch'
$SourceKey = 'HKLM:\SYSTEM\CurrentControlSet\Services\EventLog\Application\wsmwatch'
# service-reboot keeps its state across the logoff and the reboot here.
$RebootDir = Join-Path $env:ProgramData 'wsmwatch-acceptance'
$RebootState = Join-Path $RebootDir 'service-reboot.json'
# True while service-reboot's service is installed between runs: its ETW
# session is then not ours to stop.
$script:ServiceKept = $false
$script:Results = New-Object System.Collections.Generic.List[object]

# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

function Write-WwResult {
    param([string]$Name, [string]$Defect, [string]$Status, [string]$Detail)
    $line = '{0,-4} {1,-32} [{2}] {3}' -f $Status, $Name, $Defect, $Detail
    switch ($Status) {
        'PASS' { Write-Host $line -ForegroundColor Green }
        'FAIL' { Write-Host $line -ForegroundColor Red }
        default { Write-Host $line -ForegroundColor Yellow }
    }
    $script:Results.Add([pscustomobject]@{ Name = $Name; Defect = $Defect; Status = $Status; Detail = $Detail })
}

# Runs one step: the block returns a detail string on success and throws on
# failure; a block that returns 'SKIP: ...' is reported as skipped. -Alone:
# the step runs only when -Only names it exactly.
function Invoke-WwStep {
    param([string]$Name, [string]$Defect, [scriptblock]$Body, [switch]$NeedsDesktop, [switch]$Alone)
    $selected = $false
    foreach ($o in $Only) { if ($Name -like $o) { $selected = $true } }
    if (-not $selected) { return }
    if ($NeedsDesktop -and $Ci) {
        Write-WwResult $Name $Defect 'SKIP' 'needs an interactive console window'
        return
    }
    if ($Alone -and -not ($Only -contains $Name)) {
        Write-WwResult $Name $Defect 'SKIP' "needs a logoff and a reboot between runs: run it alone, -Only $Name"
        return
    }
    try {
        $detail = [string](& $Body)
        if ($detail -like 'SKIP:*') {
            Write-WwResult $Name $Defect 'SKIP' ($detail.Substring(5).Trim())
        } else {
            Write-WwResult $Name $Defect 'PASS' $detail
        }
    } catch {
        Write-WwResult $Name $Defect 'FAIL' $_.Exception.Message
    } finally {
        Stop-WwAll
    }
}

function Assert-Ww {
    param([bool]$Condition, [string]$Message)
    if (-not $Condition) { throw $Message }
}

function Test-WwSessionRunning {
    $null = & logman query $Session -ets 2>&1
    return ($LASTEXITCODE -eq 0)
}

function Wait-WwUntil {
    param([scriptblock]$Condition, [int]$Seconds = 15)
    $deadline = (Get-Date).AddSeconds($Seconds)
    while ((Get-Date) -lt $deadline) {
        if (& $Condition) { return $true }
        Start-Sleep -Milliseconds 200
    }
    return [bool](& $Condition)
}

$script:Tracers = New-Object System.Collections.Generic.List[object]

# Starts `wsmwatch live` with its own files under $Work\<tag>. -NewWindow gives
# it a console of its own (needed for Ctrl-C, Ctrl-Break and window close).
function Start-WwTracer {
    param([string]$Tag, [string[]]$Extra = @(), [switch]$NewWindow)
    $dir = Join-Path $Work $Tag
    New-Item -ItemType Directory -Force -Path $dir | Out-Null
    $t = [pscustomobject]@{
        Tag    = $Tag
        Dir    = $dir
        Alerts = Join-Path $dir 'alerts.jsonl'
        Events = Join-Path $dir 'events.jsonl'
        Err    = Join-Path $dir 'stderr.txt'
        Out    = Join-Path $dir 'stdout.txt'
        Proc   = $null
    }
    $argv = @('live', '--format', 'json', '-o', $t.Alerts, '--record', $t.Events, '--log', 'info', '--stats-json') + $Extra
    if ($NewWindow) {
        # A console of its own; stderr goes to a file through cmd, whose
        # exit status is wsmwatch's.
        $quoted = $argv | ForEach-Object { if ($_ -match '\s') { '"' + $_ + '"' } else { $_ } }
        $cmdline = '/c ""{0}" {1} 2> "{2}""' -f $Exe, ($quoted -join ' '), $t.Err
        $t.Proc = Start-Process -FilePath cmd.exe -ArgumentList $cmdline -PassThru -WindowStyle Normal
    } else {
        $t.Proc = Start-Process -FilePath $Exe -ArgumentList $argv -PassThru -NoNewWindow `
            -RedirectStandardError $t.Err -RedirectStandardOutput $t.Out
    }
    $script:Tracers.Add($t)
    return $t
}

# Waits until the tracer has started its session (or exited).
function Wait-WwTracerReady {
    param($Tracer, [int]$Seconds = 20)
    $ok = Wait-WwUntil -Seconds $Seconds -Condition {
        $Tracer.Proc.HasExited -or ((Test-Path $Tracer.Err) -and (Select-String -Path $Tracer.Err -Pattern 'process snapshot taken' -Quiet))
    }
    Assert-Ww ($ok -and -not $Tracer.Proc.HasExited) ("tracer {0} did not start: {1}" -f $Tracer.Tag, (Get-WwText $Tracer.Err))
}

function Get-WwText {
    param([string]$Path)
    if (Test-Path $Path) { return (Get-Content -Raw $Path) }
    return ''
}

function Get-WwAlerts {
    param($Tracer)
    if (-not (Test-Path $Tracer.Alerts)) { return @() }
    return @(Get-Content $Tracer.Alerts | Where-Object { $_ } | ForEach-Object { $_ | ConvertFrom-Json })
}

function Get-WwEvents {
    param($Tracer)
    if (-not (Test-Path $Tracer.Events)) { return @() }
    return @(Get-Content $Tracer.Events | Where-Object { $_ } | ForEach-Object { $_ | ConvertFrom-Json })
}

# Stops every tracer this script started, hard, and any session left
# (unless service-reboot's service owns it).
function Stop-WwAll {
    foreach ($t in $script:Tracers) {
        if ($t.Proc -and -not $t.Proc.HasExited) {
            & taskkill /f /t /pid $t.Proc.Id 2>&1 | Out-Null
        }
    }
    $script:Tracers.Clear()
    if (-not $script:ServiceKept -and (Test-WwSessionRunning)) { & logman stop $Session -ets 2>&1 | Out-Null }
}

# Runs wsmwatch.exe with these arguments; its exit status and its output
# (stdout and stderr) as one text.
function Invoke-WwCli {
    param([string[]]$Arguments)
    $text = (& $Exe @Arguments 2>&1 | ForEach-Object { "$_" }) -join "`n"
    return [pscustomobject]@{ Code = $LASTEXITCODE; Text = $text }
}

# The wsmwatch service as Win32_Service (State, ProcessId, StartMode,
# StartName, PathName, ExitCode), or $null when it is not installed.
function Get-WwService {
    return (Get-CimInstance Win32_Service -Filter "Name='$ServiceName'" -ErrorAction SilentlyContinue)
}

# The registered message file of the Event Log source, or $null.
function Get-WwSourceFile {
    $k = Get-ItemProperty -Path $SourceKey -ErrorAction SilentlyContinue
    if ($k) { return [string]$k.EventMessageFile }
    return $null
}

# Application-log events of source wsmwatch since $Since (newest first).
function Get-WwAppEvents {
    param([datetime]$Since, [int[]]$Id)
    $filter = @{ LogName = 'Application'; ProviderName = 'wsmwatch'; StartTime = $Since }
    if ($Id) { $filter['Id'] = $Id }
    return @(Get-WinEvent -FilterHashtable $filter -ErrorAction SilentlyContinue)
}

# The event's message came from the binary's message table: it is there,
# it is not Windows' "description ... cannot be found", and it says $Pattern.
function Assert-WwRendered {
    param($Record, [string]$Pattern)
    $m = [string]$Record.Message
    Assert-Ww ($m -and $m -notmatch 'cannot be found' -and $m -match $Pattern) ("event {0}: the message text did not render from the message table: '{1}'" -f $Record.Id, $m)
}

# The JSON object after the first line of event 101's detail ("exit status
# N", then the final counters).
function Get-WwCounters {
    param($Record)
    $detail = [string]$Record.Properties[1].Value
    return ($detail.Substring($detail.IndexOf("`n") + 1) | ConvertFrom-Json)
}

# Alerts of a file written by the service (same shape as a tracer's).
function Get-WwFileAlerts {
    param([string]$Path)
    return (Get-WwAlerts ([pscustomobject]@{ Alerts = $Path }))
}

function Test-WwSessionListed {
    return [bool]((& logman query -ets) -match [regex]::Escape($Session))
}

# Console control events for another process's console, from a helper
# PowerShell (attaching to a console detaches this one).
function Send-WwCtrlEvent {
    param([int]$ProcessId, [ValidateSet('C', 'Break')][string]$Kind)
    $code = if ($Kind -eq 'C') { 0 } else { 1 }
    $helper = @"
Add-Type -Namespace Ww -Name Con -MemberDefinition '
[DllImport("kernel32.dll")] public static extern bool FreeConsole();
[DllImport("kernel32.dll")] public static extern bool AttachConsole(uint p);
[DllImport("kernel32.dll")] public static extern bool SetConsoleCtrlHandler(System.IntPtr h, bool add);
[DllImport("kernel32.dll")] public static extern bool GenerateConsoleCtrlEvent(uint e, uint g);'
[Ww.Con]::FreeConsole() | Out-Null
if (-not [Ww.Con]::AttachConsole($ProcessId)) { exit 2 }
[Ww.Con]::SetConsoleCtrlHandler([IntPtr]::Zero, `$true) | Out-Null
if (-not [Ww.Con]::GenerateConsoleCtrlEvent($code, 0)) { exit 3 }
Start-Sleep -Milliseconds 500
exit 0
"@
    $p = Start-Process -FilePath powershell.exe -ArgumentList @('-NoProfile', '-Command', $helper) -PassThru -WindowStyle Hidden -Wait
    # Ctrl-Break also ends the helper itself (STATUS_CONTROL_C_EXIT).
    $ok = ($p.ExitCode -eq 0) -or ($Kind -eq 'Break' -and $p.ExitCode -eq -1073741510)
    Assert-Ww $ok "could not send Ctrl-$Kind to $ProcessId (helper exit $($p.ExitCode))"
}

# The wsmwatch.exe process under a cmd.exe started with -NewWindow.
function Get-WwChild {
    param($Tracer)
    $deadline = (Get-Date).AddSeconds(10)
    while ((Get-Date) -lt $deadline) {
        $found = Get-CimInstance Win32_Process -Filter "ParentProcessId=$($Tracer.Proc.Id)" |
            Where-Object { $_.Name -ieq 'wsmwatch.exe' } | Select-Object -First 1
        if ($found) { return $found }
        Start-Sleep -Milliseconds 200
    }
    return $null
}

$script:WinRm = $null

function Enable-WwRemoting {
    # The state before the first call is what Restore-WwRemoting puts back;
    # a later call would see WinRM already enabled and record that.
    if ($script:WinRm) { return }
    $svc = Get-Service WinRM
    $listening = $false
    try { Test-WSMan -ComputerName localhost -ErrorAction Stop | Out-Null; $listening = $true } catch { }
    $script:WinRm = [pscustomobject]@{ Status = $svc.Status; StartType = $svc.StartType; Listening = $listening }
    if (-not $listening) { Enable-PSRemoting -Force -SkipNetworkProfileCheck -ErrorAction Stop | Out-Null }
}

function Restore-WwRemoting {
    if (-not $script:WinRm) { return }
    if (-not $script:WinRm.Listening) {
        Disable-PSRemoting -Force -WarningAction SilentlyContinue | Out-Null
        Get-ChildItem WSMan:\localhost\Listener -ErrorAction SilentlyContinue | Remove-Item -Recurse -Force -ErrorAction SilentlyContinue
    }
    if ($script:WinRm.Status -ne 'Running') { Stop-Service WinRM -Force -ErrorAction SilentlyContinue }
    Set-Service WinRM -StartupType $script:WinRm.StartType -ErrorAction SilentlyContinue
}

# Starts a child with a chosen parent (PROC_THREAD_ATTRIBUTE_PARENT_PROCESS),
# the T1134.004 technique the ppid-spoof rule must flag.
function Start-WwSpoofedChild {
    param([int]$ParentId, [string]$CommandLine)
    Add-Type -TypeDefinition @'
using System;
using System.Runtime.InteropServices;
public static class WwSpoof {
  [StructLayout(LayoutKind.Sequential, CharSet = CharSet.Unicode)]
  struct STARTUPINFOEX { public STARTUPINFO StartupInfo; public IntPtr lpAttributeList; }
  [StructLayout(LayoutKind.Sequential, CharSet = CharSet.Unicode)]
  struct STARTUPINFO { public int cb; public string r; public string d; public string t; public int x, y, xs, ys, xc, yc, fa, fl; public short sw, r2; public IntPtr r3, i, o, e; }
  [StructLayout(LayoutKind.Sequential)]
  struct PROCESS_INFORMATION { public IntPtr hProcess, hThread; public int pid, tid; }
  [DllImport("kernel32.dll", SetLastError = true)] static extern IntPtr OpenProcess(int a, bool i, int pid);
  [DllImport("kernel32.dll", SetLastError = true)] static extern bool InitializeProcThreadAttributeList(IntPtr l, int c, int f, ref IntPtr s);
  [DllImport("kernel32.dll", SetLastError = true)] static extern bool UpdateProcThreadAttribute(IntPtr l, int f, IntPtr a, IntPtr v, IntPtr s, IntPtr p, IntPtr r);
  [DllImport("kernel32.dll", SetLastError = true, CharSet = CharSet.Unicode)] static extern bool CreateProcess(string app, string cmd, IntPtr pa, IntPtr ta, bool inh, uint flags, IntPtr env, string dir, ref STARTUPINFOEX si, out PROCESS_INFORMATION pi);
  public static int Start(int parent, string cmd) {
    IntPtr size = IntPtr.Zero;
    InitializeProcThreadAttributeList(IntPtr.Zero, 1, 0, ref size);
    IntPtr list = Marshal.AllocHGlobal(size);
    if (!InitializeProcThreadAttributeList(list, 1, 0, ref size)) throw new Exception("InitializeProcThreadAttributeList " + Marshal.GetLastWin32Error());
    IntPtr h = OpenProcess(0x0080 /* PROCESS_CREATE_PROCESS */, false, parent);
    if (h == IntPtr.Zero) throw new Exception("OpenProcess " + Marshal.GetLastWin32Error());
    IntPtr hp = Marshal.AllocHGlobal(IntPtr.Size);
    Marshal.WriteIntPtr(hp, h);
    if (!UpdateProcThreadAttribute(list, 0, (IntPtr)0x00020000, hp, (IntPtr)IntPtr.Size, IntPtr.Zero, IntPtr.Zero)) throw new Exception("UpdateProcThreadAttribute " + Marshal.GetLastWin32Error());
    var si = new STARTUPINFOEX(); si.StartupInfo.cb = Marshal.SizeOf(si); si.lpAttributeList = list;
    PROCESS_INFORMATION pi;
    if (!CreateProcess(null, cmd, IntPtr.Zero, IntPtr.Zero, false, 0x00080000 | 0x08000000, IntPtr.Zero, null, ref si, out pi)) throw new Exception("CreateProcess " + Marshal.GetLastWin32Error());
    return pi.pid;
  }
}
'@ -ErrorAction SilentlyContinue
    return [WwSpoof]::Start($ParentId, $CommandLine)
}

# --------------------------------------------------------------------------
# Preconditions
# --------------------------------------------------------------------------

$id = [Security.Principal.WindowsIdentity]::GetCurrent()
$admin = (New-Object Security.Principal.WindowsPrincipal $id).IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)
if (-not $admin) { Write-Host 'FAIL preconditions: run this script from an elevated PowerShell'; exit 1 }
$Exe = (Resolve-Path $Exe -ErrorAction Stop).Path
New-Item -ItemType Directory -Force -Path $Work | Out-Null
# Absolute: a service starts in System32 and needs absolute paths.
$Work = (Resolve-Path $Work).Path
Write-Host "wsmwatch: $Exe"
Write-Host "work:     $Work"
$script:ServiceKept = Test-Path $RebootState
if ($script:ServiceKept -and -not ($Only -contains 'service-reboot')) {
    Write-Host "note: service-reboot's service is installed (state in $RebootState); the tracer steps will find the host taken"
}
Stop-WwAll

# --------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------

Invoke-WwStep 'session-settings' 'D8' {
    $t = Start-WwTracer 'settings'
    Wait-WwTracerReady $t
    $q = (& logman query $Session -ets) -join "`n"
    Assert-Ww ($LASTEXITCODE -eq 0) "logman query failed: $q"
    Assert-Ww ($q -match 'Buffer Size:\s+64') "buffer size is not 64 KB:`n$q"
    Assert-Ww ($q -match 'Real-?time') "not a real-time session:`n$q"
    Assert-Ww ($q -match '22FB2CD6-0E7B-422B-A0C7-2FAD1FD0E716|Microsoft-Windows-Kernel-Process') "Kernel-Process not enabled:`n$q"
    Assert-Ww ($q -match '0x10\b|0x0*10\b') "keyword 0x10 not shown:`n$q"
    'logman shows 64 KB real-time buffers and Kernel-Process keyword 0x10'
}

Invoke-WwStep 'remote-session-alerts' 'CAR' {
    Enable-WwRemoting
    $t = Start-WwTracer 'remoting'
    Wait-WwTracerReady $t
    $s = New-PSSession -ComputerName localhost -ErrorAction Stop
    Invoke-Command -Session $s -ScriptBlock { whoami.exe | Out-Null; hostname.exe | Out-Null } -ErrorAction Stop
    Remove-PSSession $s
    Invoke-Command -ComputerName localhost -ScriptBlock { whoami.exe } -ErrorAction Stop | Out-Null
    $ok = Wait-WwUntil -Seconds 20 -Condition {
        $a = Get-WwAlerts $t
        @($a | Where-Object { $_.event.action -eq 'remote_session_ended' }).Count -ge 1
    }
    $a = Get-WwAlerts $t
    $started = @($a | Where-Object { $_.event.action -eq 'remote_session_started' -and $_.process.parent.name -ieq 'svchost.exe' })
    $who = @($a | Where-Object { $_.event.action -eq 'remote_session_activity' -and $_.process.name -ieq 'whoami.exe' })
    Assert-Ww ($started.Count -ge 1) 'no remote_session_started under svchost.exe'
    Assert-Ww ($who.Count -ge 1) 'no remote_session_activity for whoami.exe'
    Assert-Ww $ok 'no remote_session_ended'
    Assert-Ww ($started[0].process.executable -match '^[A-Za-z]:\\') "executable is not a DOS path: $($started[0].process.executable)"
    "started $($started.Count), whoami activity $($who.Count), ended seen; DOS paths"
}

# Issue 12: the live source attributes a session. The recorded stream must
# hold the host's logon (from its token) before its start, the inbound
# WinRM connection with the client's address, and the commands it ran.
Invoke-WwStep 'remote-session-attribution' 'issue 12' {
    Enable-WwRemoting
    # PowerShell writes 4103/4104 only with module / script block logging on.
    $pol = 'HKLM:\SOFTWARE\Policies\Microsoft\Windows\PowerShell'
    $created = New-Object System.Collections.Generic.List[string]
    foreach ($k in @($pol, "$pol\ScriptBlockLogging", "$pol\ModuleLogging", "$pol\ModuleLogging\ModuleNames")) {
        if (-not (Test-Path $k)) { New-Item -Path $k -Force | Out-Null; $created.Insert(0, $k) }
    }
    $values = @(
        @("$pol\ScriptBlockLogging", 'EnableScriptBlockLogging', 1),
        @("$pol\ModuleLogging", 'EnableModuleLogging', 1),
        @("$pol\ModuleLogging\ModuleNames", '*', '*')
    )
    $saved = @{}
    foreach ($v in $values) {
        $saved[$v[0] + '|' + $v[1]] = (Get-ItemProperty -Path $v[0] -Name $v[1] -ErrorAction SilentlyContinue).($v[1])
    }
    $s = $null
    try {
        foreach ($v in $values) { Set-ItemProperty -Path $v[0] -Name $v[1] -Value $v[2] }
        $t = Start-WwTracer 'attribution'
        Wait-WwTracerReady $t
        $s = New-PSSession -ComputerName localhost -ErrorAction Stop
        $hostPid = Invoke-Command -Session $s -ScriptBlock { $PID } -ErrorAction Stop
        Invoke-Command -Session $s -ScriptBlock { Get-Date | Out-Null; whoami.exe | Out-Null } -ErrorAction Stop
        Start-Sleep -Seconds 3
        $ev = Get-WwEvents $t
        $startAt = -1
        $logonAt = -1
        for ($i = 0; $i -lt $ev.Count; $i++) {
            $e = $ev[$i]
            if ($e.pid -ne $hostPid) { continue }
            if ($startAt -lt 0 -and $e.kind -eq 'start' -and $e.image -match 'wsmprovhost\.exe$') { $startAt = $i }
            if ($logonAt -lt 0 -and $e.kind -eq 'activity' -and $e.activity.logon) { $logonAt = $i }
        }
        Assert-Ww ($startAt -ge 0) "no start recorded for the session host (pid $hostPid)"
        Assert-Ww ($logonAt -ge 0) "no logon recorded for the session host (pid $hostPid): $(Get-WwText $t.Err)"
        Assert-Ww ($logonAt -lt $startAt) 'the logon was recorded after the start'
        $start = $ev[$startAt]
        $logon = $ev[$logonAt].activity.logon
        Assert-Ww ($null -ne $start.logon_id -and $start.logon_id -eq $logon.logon_id) "start logon_id $($start.logon_id) vs logon $($logon.logon_id)"
        Assert-Ww ($logon.user -ieq $env:USERNAME) "logon user $($logon.user), expected $env:USERNAME"
        $conn = @($ev | Where-Object { $_.kind -eq 'activity' -and $_.activity.connection -and $_.activity.connection.direction -eq 'inbound' -and $_.activity.connection.local_port -eq 5985 })
        Assert-Ww ($conn.Count -ge 1) 'no inbound TCP connection to 5985 recorded (Kernel-Network)'
        $client = $conn[-1].activity.connection.remote_ip
        Assert-Ww ($client -in @('127.0.0.1', '::1')) "client address $client, expected loopback"
        $cmds = @($ev | Where-Object { $_.kind -eq 'activity' -and $_.activity.command -and $_.pid -eq $hostPid })
        $who = @($cmds | Where-Object { ($_.activity.command.value + $_.activity.command.script_block_text) -match 'whoami' })
        Assert-Ww ($who.Count -ge 1) "no PowerShell command with whoami from the host ($($cmds.Count) commands from it)"
        "logon $($logon.logon_id) $($logon.domain)\$($logon.user) type $($logon.logon_type) $($logon.auth_package) before the start; client $client; $($cmds.Count) commands"
    } finally {
        if ($s) { Remove-PSSession $s }
        foreach ($v in $values) {
            $old = $saved[$v[0] + '|' + $v[1]]
            if ($null -eq $old) { Remove-ItemProperty -Path $v[0] -Name $v[1] -ErrorAction SilentlyContinue }
            else { Set-ItemProperty -Path $v[0] -Name $v[1] -Value $old }
        }
        foreach ($k in $created) { Remove-Item -Path $k -Recurse -Force -ErrorAction SilentlyContinue }
    }
}

Invoke-WwStep 'rundown-and-creator' 'D1/T1134.004' {
    $t = Start-WwTracer 'rundown'
    Wait-WwTracerReady $t
    $me = $PID
    $child = Start-Process -FilePath cmd.exe -ArgumentList '/c', 'ping -n 3 127.0.0.1 >nul' -PassThru -WindowStyle Hidden
    # A decoy parent of our own: opening it needs no SeDebugPrivilege.
    $decoy = Start-Process -FilePath ping.exe -ArgumentList '-n', '30', '127.0.0.1' -PassThru -WindowStyle Hidden
    $parent = $decoy.Id
    $spoofed = Start-WwSpoofedChild -ParentId $parent -CommandLine 'cmd.exe /c ping -n 2 127.0.0.1 >nul'
    $null = Wait-WwUntil -Seconds 10 -Condition { @(Get-WwAlerts $t | Where-Object { $_.event.action -eq 'parent_pid_spoofed' }).Count -ge 1 }
    $ev = Get-WwEvents $t
    $rundown = @($ev | Where-Object { $_.origin -eq 'rundown' })
    Assert-Ww ($rundown.Count -ge 10) "rundown found only $($rundown.Count) processes"
    Assert-Ww (@($rundown | Where-Object { $_.image -match 'lsass\.exe$' }).Count -ge 1) 'lsass.exe not in the rundown'
    $c = @($ev | Where-Object { $_.kind -eq 'start' -and $_.pid -eq $child.Id }) | Select-Object -First 1
    Assert-Ww ([bool]$c) "child $($child.Id) not recorded"
    Assert-Ww ($c.ppid -eq $me -and $c.creator_pid -eq $me) "creator/parent of a normal child: ppid $($c.ppid), creator $($c.creator_pid), expected $me"
    $flag = @(Get-WwAlerts $t | Where-Object { $_.event.action -eq 'parent_pid_spoofed' -and $_.process.pid -eq $spoofed })
    Assert-Ww ($flag.Count -ge 1) "spoofed child $spoofed (parent $parent) not flagged"
    Stop-Process -Id $decoy.Id -Force -ErrorAction SilentlyContinue
    "rundown $($rundown.Count) processes; creator = parent for a normal child; spoof of $spoofed flagged"
}

Invoke-WwStep 'latency-default-flush' 'D5' {
    Enable-WwRemoting
    $t = Start-WwTracer 'latency'
    Wait-WwTracerReady $t
    $job = Start-Job -ScriptBlock { Invoke-Command -ComputerName localhost -ScriptBlock { Start-Sleep -Seconds 3 } }
    $seenAt = $null
    $deadline = (Get-Date).AddSeconds(15)
    while (-not $seenAt -and (Get-Date) -lt $deadline) {
        if (@(Get-WwAlerts $t | Where-Object { $_.event.action -eq 'remote_session_started' }).Count -ge 1) {
            $seenAt = (Get-Date).ToUniversalTime()
        } else {
            Start-Sleep -Milliseconds 50
        }
    }
    Receive-Job -Wait -AutoRemoveJob $job | Out-Null
    Assert-Ww ([bool]$seenAt) 'no remote_session_started alert'
    $a = @(Get-WwAlerts $t | Where-Object { $_.event.action -eq 'remote_session_started' })[0]
    $started = [DateTime]::Parse($a.process.start).ToUniversalTime()
    $lag = ($seenAt - $started).TotalMilliseconds
    Assert-Ww ($lag -lt 2000) ("alert {0:N0} ms after wsmprovhost.exe started" -f $lag)
    "alert about {0:N0} ms after wsmprovhost.exe started" -f $lag
}

Invoke-WwStep 'forced-loss-tiny-buffers' 'D6' {
    $t = Start-WwTracer 'loss' -NewWindow -Extra @('--buffer-kib', '1', '--min-buffers', '2', '--max-buffers', '2', '--flush-ms', '0')
    $w = Get-WwChild $t
    Assert-Ww ([bool]$w) 'wsmwatch.exe did not start in its own console'
    Start-Sleep -Seconds 5
    $jobs = 1..4 | ForEach-Object { Start-Job -ScriptBlock { 1..400 | ForEach-Object { cmd.exe /c exit } } }
    $jobs | Wait-Job | Remove-Job
    Start-Sleep -Seconds 2
    Send-WwCtrlEvent -ProcessId $w.ProcessId -Kind 'C'
    $null = Wait-WwUntil -Seconds 10 -Condition { $t.Proc.HasExited }
    $err = Get-WwText $t.Err
    $final = ($err -split "`n" | Where-Object { $_ -match '"final":true' } | Select-Object -Last 1)
    if (-not $final) { return 'SKIP: the tracer was not stopped gracefully (no final summary)' }
    $s = ($final | ConvertFrom-Json).stats.totals
    Assert-Ww (($s.upstream_lost + $s.realtime_buffers_lost) -gt 0) "no loss counted with 1 KB x 2 buffers: $final"
    Assert-Ww ($null -ne $s.realtime_buffers_lost -and $null -ne $s.log_buffers_lost) 'loss kinds are not reported separately'
    Assert-Ww ($t.Proc.ExitCode -eq 3) "exit status $($t.Proc.ExitCode), expected 3 (incomplete)"
    "events lost $($s.upstream_lost), real-time buffers lost $($s.realtime_buffers_lost), log buffers lost $($s.log_buffers_lost); exit 3"
}

Invoke-WwStep 'stop-ctrl-c' 'D2/D3' {
    $t = Start-WwTracer 'ctrlc' -NewWindow
    $w = Get-WwChild $t
    Assert-Ww ([bool]$w) 'wsmwatch.exe did not start in its own console'
    Start-Sleep -Seconds 5
    Send-WwCtrlEvent -ProcessId $w.ProcessId -Kind 'C'
    Assert-Ww (Wait-WwUntil -Seconds 10 -Condition { $t.Proc.HasExited }) 'still running 10 s after Ctrl-C'
    Assert-Ww (-not (Test-WwSessionRunning)) 'the ETW session is left running'
    Assert-Ww ((Get-WwText $t.Err) -match '"final":true') 'no final summary after Ctrl-C'
    'stopped in order: summary printed, no session left'
}

Invoke-WwStep 'stop-ctrl-break' 'D2/D3' {
    $t = Start-WwTracer 'ctrlbreak' -NewWindow
    $w = Get-WwChild $t
    Assert-Ww ([bool]$w) 'wsmwatch.exe did not start in its own console'
    Start-Sleep -Seconds 5
    Send-WwCtrlEvent -ProcessId $w.ProcessId -Kind 'Break'
    Assert-Ww (Wait-WwUntil -Seconds 10 -Condition { $t.Proc.HasExited }) 'still running 10 s after Ctrl-Break'
    Assert-Ww (-not (Test-WwSessionRunning)) 'the ETW session is left running'
    'no session left after Ctrl-Break'
}

Invoke-WwStep 'stop-window-close' 'D3' -NeedsDesktop {
    $t = Start-WwTracer 'close' -NewWindow
    $w = Get-WwChild $t
    Assert-Ww ([bool]$w) 'wsmwatch.exe did not start in its own console'
    Start-Sleep -Seconds 5
    $t.Proc.Refresh()
    if ($t.Proc.MainWindowHandle -eq [IntPtr]::Zero) { return 'SKIP: the console has no window of its own here (Windows Terminal?)' }
    $null = $t.Proc.CloseMainWindow()
    Assert-Ww (Wait-WwUntil -Seconds 10 -Condition { $t.Proc.HasExited }) 'still running 10 s after the window close'
    Assert-Ww (-not (Test-WwSessionRunning)) 'the ETW session is left running'
    Assert-Ww ((Get-WwText $t.Err) -match '"final":true') 'the summary was lost: close did not wait for the flush'
    'window close waited for the flush; no session left'
}

Invoke-WwStep 'stop-taskkill-then-restart' 'D1' {
    $t = Start-WwTracer 'kill1'
    Wait-WwTracerReady $t
    & taskkill /f /pid $t.Proc.Id 2>&1 | Out-Null
    $null = Wait-WwUntil -Seconds 5 -Condition { $t.Proc.HasExited }
    Assert-Ww (Test-WwSessionRunning) 'expected the session to outlive a hard kill'
    $t2 = Start-WwTracer 'kill2'
    Wait-WwTracerReady $t2
    Assert-Ww ((Get-WwText $t2.Err) -match 'stopped a stale ETW session') 'the stale session was not reclaimed'
    'a hard kill leaves the session; the next start reclaims it'
}

Invoke-WwStep 'stop-logman-tamper' 'D1' {
    $t = Start-WwTracer 'tamper'
    Wait-WwTracerReady $t
    & logman stop $Session -ets 2>&1 | Out-Null
    $ok = Wait-WwUntil -Seconds 20 -Condition { @(Get-WwAlerts $t | Where-Object { $_.event.action -eq 'etw_session_stopped' }).Count -ge 1 }
    Assert-Ww $ok 'no etw_session_stopped alert after logman stop'
    $a = @(Get-WwAlerts $t | Where-Object { $_.event.action -eq 'etw_session_stopped' })[0]
    Assert-Ww ($a.rule.id -eq 'WSMW-TAMPER-001') "rule $($a.rule.id)"
    Assert-Ww ($a.event.severity -eq 99) 'not critical'
    Assert-Ww ([bool]$a.wsmwatch.monitoring.gap.end) 'monitoring was not restored (no gap end)'
    Assert-Ww (Wait-WwUntil -Seconds 10 -Condition { Test-WwSessionRunning }) 'no session after the restart'
    Assert-Ww (-not $t.Proc.HasExited) 'the tracer exited instead of restarting'
    "alert raised; gap $($a.wsmwatch.monitoring.gap.start) .. $($a.wsmwatch.monitoring.gap.end); session restarted"
}

Invoke-WwStep 'two-instances' 'D1' {
    $t = Start-WwTracer 'first'
    Wait-WwTracerReady $t
    $t2 = Start-WwTracer 'second'
    Assert-Ww (Wait-WwUntil -Seconds 15 -Condition { $t2.Proc.HasExited }) 'a second instance kept running'
    Assert-Ww ($t2.Proc.ExitCode -eq 1) "second instance exit $($t2.Proc.ExitCode), expected 1"
    Assert-Ww ((Get-WwText $t2.Err) -match 'already running') 'no clear message from the second instance'
    Assert-Ww (Test-WwSessionRunning) "the first instance's session was taken"
    $t3 = Start-WwTracer 'takeover' -Extra @('--takeover')
    Wait-WwTracerReady $t3
    Assert-Ww (Wait-WwUntil -Seconds 20 -Condition { $t.Proc.HasExited }) 'the first instance did not give up after --takeover'
    Assert-Ww ($t.Proc.ExitCode -ne 0) 'the first instance exited 0 after losing its session'
    Assert-Ww (@(Get-WwAlerts $t | Where-Object { $_.event.action -eq 'etw_session_stopped' }).Count -ge 1) 'no tamper alert from the first instance'
    Assert-Ww (Test-WwSessionRunning) "the newcomer's session was stopped"
    'second refused (exit 1); --takeover: first alerts and exits non-zero, newcomer keeps its session'
}

Invoke-WwStep 'not-elevated' 'usability' {
    $err = Join-Path $Work 'not-elevated.txt'
    Remove-Item $err -ErrorAction SilentlyContinue
    $cmd = 'cmd /c ""{0}" live 2> "{1}""' -f $Exe, $err
    Start-Process -FilePath runas.exe -ArgumentList @('/trustlevel:0x20000', $cmd) -WindowStyle Hidden -Wait
    $null = Wait-WwUntil -Seconds 15 -Condition { (Test-Path $err) -and ((Get-WwText $err) -match 'Administrator|already running') }
    $text = Get-WwText $err
    if (-not $text) { return 'SKIP: runas /trustlevel is not available here' }
    Assert-Ww ($text -match 'Administrator') "no elevation hint: $text"
    Assert-Ww (-not (Test-WwSessionRunning)) 'a session was left behind'
    'clear "run as Administrator" message; no session left'
}

Invoke-WwStep 'dos-paths-subst-and-share' 'DOS paths' {
    $t = Start-WwTracer 'dospaths'
    Wait-WwTracerReady $t
    $dir = Join-Path $Work 'subst-target'
    New-Item -ItemType Directory -Force -Path $dir | Out-Null
    Copy-Item (Join-Path $env:SystemRoot 'System32\whoami.exe') (Join-Path $dir 'ww-subst-probe.exe')
    $letter = @('W', 'V', 'U', 'T') | Where-Object { -not (Test-Path "$($_):\") } | Select-Object -First 1
    & subst "$($letter):" $dir | Out-Null
    try { & "$($letter):\ww-subst-probe.exe" | Out-Null } finally { & subst "$($letter):" /d | Out-Null }
    $share = '\\localhost\{0}$\{1}' -f $dir.Substring(0, 1), (Join-Path $dir.Substring(3) 'ww-subst-probe.exe')
    $shared = $true
    try { & $share | Out-Null } catch { $shared = $false }
    Start-Sleep -Seconds 2
    $ev = Get-WwEvents $t
    $local = @($ev | Where-Object { $_.kind -eq 'start' -and $_.image -match 'ww-subst-probe\.exe$' -and $_.image -match '^[A-Za-z]:\\' })
    Assert-Ww ($local.Count -ge 1) ('no drive-letter path for the subst run: ' + (($ev | Where-Object { $_.image -match 'ww-subst-probe' } | ForEach-Object { $_.image }) -join ', '))
    if (-not $shared) { return "subst run recorded as $($local[0].image); SKIP share: admin share not reachable" }
    $unc = @($ev | Where-Object { $_.kind -eq 'start' -and $_.image -match '^\\\\[^\\?]' -and $_.image -match 'ww-subst-probe\.exe$' })
    Assert-Ww ($unc.Count -ge 1) 'no UNC path for the run from the share'
    "subst run: $($local[0].image); share run: $($unc[0].image)"
}

# Issue 14: `live` as a Windows service, with -o and --eventlog. Its whole
# life in one run; logoff and reboot are service-reboot's.
Invoke-WwStep 'service' 'issue 14' {
    if ($script:ServiceKept -or (Get-WwService)) { return "SKIP: a service named $ServiceName is already installed here (uninstall it first)" }
    Enable-WwRemoting
    $dir = Join-Path $Work 'service'
    New-Item -ItemType Directory -Force -Path $dir | Out-Null
    $alerts = Join-Path $dir 'alerts.ndjson'
    $since = (Get-Date).AddSeconds(-2)
    try {
        $r = Invoke-WwCli @('service', 'install', '-o', $alerts, '--eventlog')
        Assert-Ww ($r.Code -eq 0) "service install: exit $($r.Code): $($r.Text)"
        $svc = Get-WwService
        Assert-Ww ([bool]$svc) 'service install said yes, but there is no service'
        Assert-Ww ($svc.StartMode -eq 'Auto') "start mode $($svc.StartMode), expected Auto"
        Assert-Ww ($svc.StartName -eq 'LocalSystem') "account $($svc.StartName), expected LocalSystem"
        Assert-Ww ($svc.PathName -match "service run --name $ServiceName -- " -and $svc.PathName -match '--eventlog') "command line: $($svc.PathName)"
        $failure = (& sc.exe qfailure $ServiceName) -join "`n"
        Assert-Ww ($failure -match 'RESTART') "no restart-on-failure actions: $failure"
        Assert-Ww ((Get-WwSourceFile) -ieq $Exe) "the source's EventMessageFile is '$(Get-WwSourceFile)', expected $Exe"

        $r = Invoke-WwCli @('service', 'start')
        Assert-Ww ($r.Code -eq 0) "service start: exit $($r.Code): $($r.Text)"
        $svc = Get-WwService
        Assert-Ww ($svc.State -eq 'Running' -and $svc.ProcessId -gt 0) "after start: $($svc.State), pid $($svc.ProcessId)"
        Assert-Ww (Wait-WwUntil -Seconds 20 -Condition { Test-WwSessionListed }) 'the service started no ETW session'

        # Dies without being asked: the SCM restarts it (first delay 10 s),
        # and the new process reclaims the session the dead one left.
        $first = $svc.ProcessId
        & taskkill /f /pid $first 2>&1 | Out-Null
        $back = Wait-WwUntil -Seconds 40 -Condition {
            $now = Get-WwService
            $now.State -eq 'Running' -and $now.ProcessId -gt 0 -and $now.ProcessId -ne $first
        }
        Assert-Ww $back "the SCM did not restart the service within 40 s of killing pid $first"
        $svc = Get-WwService
        Start-Sleep -Seconds 5

        Invoke-Command -ComputerName localhost -ScriptBlock { whoami.exe } -ErrorAction Stop | Out-Null
        $ok = Wait-WwUntil -Seconds 20 -Condition {
            @(Get-WwFileAlerts $alerts | Where-Object { $_.event.action -eq 'remote_session_started' }).Count -ge 1 -and
            @(Get-WwAppEvents -Since $since -Id 1).Count -ge 1
        }
        $a = @(Get-WwFileAlerts $alerts | Where-Object { $_.event.action -eq 'remote_session_started' })
        Assert-Ww ($a.Count -ge 1) "no remote_session_started in $alerts"
        $e1 = @(Get-WwAppEvents -Since $since -Id 1)
        Assert-Ww $ok 'no Application-log event 1 from source wsmwatch'
        Assert-WwRendered $e1[0] 'A remote PowerShell session started'
        Assert-Ww ($e1[0].Level -eq 3) "event 1 has level $($e1[0].Level), expected 3 (Warning)"
        $doc = [string]$e1[0].Properties[1].Value | ConvertFrom-Json
        Assert-Ww ($doc.event.action -eq 'remote_session_started') "event 1's second data string is not the alert's ECS JSON: $($e1[0].Properties[1].Value)"
        Assert-Ww (@(Get-WwAppEvents -Since $since -Id 100).Count -ge 2) 'not two events 100 (service started: first start and restart)'

        $stopAt = (Get-Date).AddSeconds(-1)
        $r = Invoke-WwCli @('service', 'stop')
        Assert-Ww ($r.Code -eq 0) "service stop: exit $($r.Code): $($r.Text)"
        $svc = Get-WwService
        Assert-Ww ($svc.State -eq 'Stopped') "after stop: $($svc.State)"
        Assert-Ww ($svc.ExitCode -eq 0) "asked to stop, yet exit code $($svc.ExitCode)"
        Assert-Ww (-not (Test-WwSessionListed)) "logman query -ets still lists $Session after the stop"
        $null = Wait-WwUntil -Seconds 10 -Condition { @(Get-WwAppEvents -Since $stopAt -Id 101).Count -ge 1 }
        $e101 = @(Get-WwAppEvents -Since $stopAt -Id 101)
        Assert-Ww ($e101.Count -ge 1) 'no event 101 (service stopped) after the stop'
        Assert-WwRendered $e101[0] 'stopped\. Final counters'
        $counters = Get-WwCounters $e101[0]
        Assert-Ww ($counters.stats.engine.alerts -ge 1) "event 101's counters count no alert: $($e101[0].Properties[1].Value)"
        $ended = @(Get-WwFileAlerts $alerts | Where-Object { $_.event.action -eq 'remote_session_ended' })
        Assert-Ww ($ended.Count -ge 1) 'no remote_session_ended in the file after the stop'

        $r = Invoke-WwCli @('service', 'uninstall')
        Assert-Ww ($r.Code -eq 0) "service uninstall: exit $($r.Code): $($r.Text)"
        Assert-Ww (Wait-WwUntil -Seconds 10 -Condition { -not (Get-WwService) }) 'the service is still installed after uninstall'
        Assert-Ww (-not (Test-Path $SourceKey)) "the Event Log source key is still there after uninstall: $SourceKey"
        "restarted after a kill (pid $first -> $($svc.ProcessId)); alert in the file and event 1 (rendered); stop: exit 0, event 101 ($($counters.stats.engine.alerts) alerts), no session left; uninstalled with the source"
    } finally {
        if (Get-WwService) { Invoke-WwCli @('service', 'uninstall') | Out-Null }
    }
}

# Issue 14 / D4: the service outlives a logoff and comes back after a
# reboot, having stopped in order at shutdown (preshutdown). Three runs of
# -Only service-reboot: install; after a logoff and logon; after a reboot.
# A failure uninstalls, so the next run starts over.
Invoke-WwStep 'service-reboot' 'issue 14/D4' -Alone {
    $alerts = Join-Path $RebootDir 'alerts.ndjson'
    $os = Get-CimInstance Win32_OperatingSystem
    $boot = $os.LastBootUpTime.ToUniversalTime().Ticks
    $logon = ((& whoami.exe /logonid) -join '').Trim()
    $leave = $false
    try {
        if (-not (Test-Path $RebootState)) {
            if (Get-WwService) { $leave = $true; return "SKIP: a service named $ServiceName is already installed here (uninstall it first)" }
            New-Item -ItemType Directory -Force -Path $RebootDir | Out-Null
            Remove-Item $alerts -ErrorAction SilentlyContinue
            $installed = (Get-Date).ToUniversalTime().Ticks
            $r = Invoke-WwCli @('service', 'install', '-o', $alerts, '--eventlog')
            Assert-Ww ($r.Code -eq 0) "service install: exit $($r.Code): $($r.Text)"
            $r = Invoke-WwCli @('service', 'start')
            Assert-Ww ($r.Code -eq 0) "service start: exit $($r.Code): $($r.Text)"
            $svc = Get-WwService
            Assert-Ww ($svc.State -eq 'Running') "after start: $($svc.State)"
            [pscustomobject]@{ Installed = $installed; Pid = $svc.ProcessId; Boot = $boot; Logon = $logon; LogoffSeen = $false } |
                ConvertTo-Json | Set-Content -Path $RebootState
            $script:ServiceKept = $true
            $leave = $true
            return "SKIP: run 1 of 3 done: the service runs as pid $($svc.ProcessId); log off, log on, then run -Only service-reboot again"
        }
        $state = Get-Content -Raw $RebootState | ConvertFrom-Json
        $script:ServiceKept = $true
        $since = [DateTime]::new([long]$state.Installed, [DateTimeKind]::Utc).ToLocalTime()
        $rebooted = ($boot - [long]$state.Boot) -gt [TimeSpan]::FromMinutes(1).Ticks
        if (-not $rebooted) {
            if ($logon -eq $state.Logon) {
                $leave = $true
                return "SKIP: still the logon of run 1; log off, log on, then run -Only service-reboot again"
            }
            $svc = Get-WwService
            Assert-Ww ($svc.State -eq 'Running') "after the logoff the service is $($svc.State)"
            Assert-Ww ($svc.ProcessId -eq [int]$state.Pid) "after the logoff the service runs as pid $($svc.ProcessId), was $($state.Pid): it was stopped or restarted"
            Assert-Ww (@(Get-WwAppEvents -Since $since -Id 101, 102).Count -eq 0) 'an event 101 or 102 since the install: the logoff stopped the service'
            Assert-Ww (Test-WwSessionListed) "the ETW session $Session is gone after the logoff"
            $state.LogoffSeen = $true
            $state | ConvertTo-Json | Set-Content -Path $RebootState
            $leave = $true
            return "SKIP: run 2 of 3 done: the logoff left pid $($state.Pid) running, no stop event; restart the computer, log on, then run -Only service-reboot again"
        }
        $bootAt = $os.LastBootUpTime
        $svc = Get-WwService
        Assert-Ww ($svc.State -eq 'Running') "after the reboot the service is $($svc.State) (start mode $($svc.StartMode))"
        $stopped = @(Get-WwAppEvents -Since $since -Id 101 | Where-Object { $_.TimeCreated -lt $bootAt })
        Assert-Ww ($stopped.Count -ge 1) 'no event 101 before the reboot: the shutdown did not stop the service in order (preshutdown)'
        Assert-Ww (@(Get-WwAppEvents -Since $bootAt -Id 100).Count -ge 1) 'no event 100 since the boot'
        Assert-Ww (Wait-WwUntil -Seconds 30 -Condition { Test-WwSessionListed }) "no ETW session $Session after the boot"
        Enable-WwRemoting
        $before = @(Get-WwFileAlerts $alerts | Where-Object { $_.event.action -eq 'remote_session_started' }).Count
        $probe = (Get-Date).AddSeconds(-1)
        Invoke-Command -ComputerName localhost -ScriptBlock { whoami.exe } -ErrorAction Stop | Out-Null
        $ok = Wait-WwUntil -Seconds 20 -Condition {
            @(Get-WwFileAlerts $alerts | Where-Object { $_.event.action -eq 'remote_session_started' }).Count -gt $before -and
            @(Get-WwAppEvents -Since $probe -Id 1).Count -ge 1
        }
        Assert-Ww $ok 'no remote_session_started alert (file and event 1) after the reboot'
        $r = Invoke-WwCli @('service', 'uninstall')
        Assert-Ww ($r.Code -eq 0) "service uninstall: exit $($r.Code): $($r.Text)"
        Assert-Ww (Wait-WwUntil -Seconds 10 -Condition { -not (Get-WwService) }) 'the service is still installed after uninstall'
        Assert-Ww (-not (Test-Path $SourceKey)) "the Event Log source key is still there after uninstall: $SourceKey"
        Assert-Ww ([bool]$state.LogoffSeen) 'the reboot passed, but no logoff was checked (run the step after a logoff, before the reboot)'
        "survived a logoff (pid $($state.Pid)); after the reboot running again as pid $($svc.ProcessId); event 101 at shutdown, 100 at boot; alert and event 1 after the boot; uninstalled with the source"
    } finally {
        if (-not $leave) {
            if (Test-Path $RebootState) { Remove-Item $RebootState -Force }
            $script:ServiceKept = $false
            if (Get-WwService) { Invoke-WwCli @('service', 'uninstall') | Out-Null }
        }
    }
}

# Issue 14: `live --eventlog --register` in a console: the source registered
# with this binary's message table, alerts in the Application log (a remote
# session: Warning; a masquerade: Error) and in the -o file alike.
Invoke-WwStep 'eventlog' 'issue 14' {
    if ($script:ServiceKept -or (Get-WwService)) { return "SKIP: a service named $ServiceName is installed here; its tracer holds the host" }
    Enable-WwRemoting
    $saved = Get-ItemProperty -Path $SourceKey -ErrorAction SilentlyContinue
    $since = (Get-Date).AddSeconds(-2)
    try {
        $t = Start-WwTracer 'eventlog' -Extra @('--eventlog', '--register')
        Wait-WwTracerReady $t
        Assert-Ww ((Get-WwText $t.Err) -match 'registered Event Log source wsmwatch') "no registration line: $(Get-WwText $t.Err)"
        Assert-Ww ((Get-WwSourceFile) -ieq $Exe) "the source's EventMessageFile is '$(Get-WwSourceFile)', expected $Exe"
        $types = (Get-ItemProperty -Path $SourceKey).TypesSupported
        Assert-Ww ($types -eq 7) "TypesSupported $types, expected 7"
        Invoke-Command -ComputerName localhost -ScriptBlock { whoami.exe } -ErrorAction Stop | Out-Null
        # wsmprovhost.exe outside System32, under this shell: critical.
        $fake = Join-Path $t.Dir 'wsmprovhost.exe'
        Copy-Item (Join-Path $env:SystemRoot 'System32\whoami.exe') $fake
        & $fake | Out-Null
        $null = Wait-WwUntil -Seconds 20 -Condition {
            @(Get-WwAppEvents -Since $since -Id 1).Count -ge 1 -and @(Get-WwAppEvents -Since $since -Id 11).Count -ge 1
        }
        $e1 = @(Get-WwAppEvents -Since $since -Id 1)
        Assert-Ww ($e1.Count -ge 1) 'no Application-log event 1 from source wsmwatch'
        Assert-WwRendered $e1[0] 'A remote PowerShell session started'
        Assert-Ww ($e1[0].Level -eq 3) "event 1 has level $($e1[0].Level), expected 3 (Warning)"
        $data = @(([xml]$e1[0].ToXml()).Event.EventData.Data)
        Assert-Ww ($data.Count -eq 2) "event 1 has $($data.Count) data strings, expected 2"
        Assert-Ww ([string]$e1[0].Properties[0].Value -match 'remote_session_started') "event 1's text line: $($e1[0].Properties[0].Value)"
        $doc = [string]$e1[0].Properties[1].Value | ConvertFrom-Json
        Assert-Ww ($doc.event.action -eq 'remote_session_started') "event 1's second data string is not the alert's ECS JSON: $($e1[0].Properties[1].Value)"
        $e11 = @(Get-WwAppEvents -Since $since -Id 11)
        Assert-Ww ($e11.Count -ge 1) 'no event 11 (wsmprovhost_unexpected_path) for the wsmprovhost.exe copy'
        Assert-WwRendered $e11[0] 'outside'
        Assert-Ww ($e11[0].Level -eq 2) "event 11 has level $($e11[0].Level), expected 2 (Error)"
        $file = @(Get-WwAlerts $t | Where-Object { $_.event.action -in @('remote_session_started', 'wsmprovhost_unexpected_path') })
        Assert-Ww ($file.Count -ge 2) 'the alerts are not in the -o file as well'
        'source registered (this .exe, types 7); event 1 (Warning) and 11 (Error) rendered, text line and ECS JSON as data; same alerts in the file'
    } finally {
        Stop-WwAll
        if ($saved) {
            Set-ItemProperty -Path $SourceKey -Name EventMessageFile -Value $saved.EventMessageFile -ErrorAction SilentlyContinue
        } else {
            Remove-Item -Path $SourceKey -Recurse -Force -ErrorAction SilentlyContinue
        }
    }
}

# --------------------------------------------------------------------------
# Summary
# --------------------------------------------------------------------------

Stop-WwAll
Restore-WwRemoting
$failed = @($script:Results | Where-Object { $_.Status -eq 'FAIL' })
$passed = @($script:Results | Where-Object { $_.Status -eq 'PASS' })
$skipped = @($script:Results | Where-Object { $_.Status -eq 'SKIP' })
Write-Host ('acceptance: {0} passed, {1} failed, {2} skipped; files in {3}' -f $passed.Count, $failed.Count, $skipped.Count, $Work)
if ($failed.Count -gt 0) { exit 1 }
exit 0

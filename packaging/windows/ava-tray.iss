; Inno Setup script for AVA Tray (Windows x64). packaging/windows/build.ps1 calls it as
;   ISCC /DAppVersion=0.1.0 /DSourceDir=build\bundle\ava-tray /DOutputDir=dist /DIconFile=...\ava-tray.ico ava-tray.iss
; Per-user install by default (no admin prompt), Start-menu entry, optional start at login (the same HKCU
; Run value the app's own Settings toggle writes), and an uninstall that keeps the user's settings,
; history and logs (%LOCALAPPDATA%\ava-tray) unless the user says to remove them.

#define AppName "AVA Tray"
#define AppExe "ava-tray.exe"
#define RunKey "Software\Microsoft\Windows\CurrentVersion\Run"
#define RunValue "AVA Tray"
#define DataDir "{localappdata}\ava-tray"
#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif
#ifndef SourceDir
  #define SourceDir "..\..\build\bundle\ava-tray"
#endif
#ifndef OutputDir
  #define OutputDir "..\..\dist"
#endif

[Setup]
AppId={{5B0E7C1A-4C39-4F4B-9E55-A7A7A17B2C60}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=AVA Tray developers
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir={#OutputDir}
OutputBaseFilename=AVA-Tray-{#AppVersion}-windows-x64-setup
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
#ifdef IconFile
SetupIconFile={#IconFile}
#endif
UninstallDisplayIcon={app}\{#AppExe}
UninstallDisplayName={#AppName}
CloseApplications=yes
RestartApplications=no

[Tasks]
Name: "startatlogin"; Description: "Start {#AppName} when I log in"; GroupDescription: "Startup:"; Flags: unchecked
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\{#AppExe}"
Name: "{group}\Uninstall {#AppName}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; Tasks: desktopicon

[Registry]
Root: HKCU; Subkey: "{#RunKey}"; ValueType: string; ValueName: "{#RunValue}"; ValueData: """{app}\{#AppExe}"""; Tasks: startatlogin

[Run]
Filename: "{app}\{#AppExe}"; Description: "Start {#AppName} now"; Flags: nowait postinstall skipifsilent

[UninstallRun]
; The tray app must not hold its files open while they are removed.
Filename: "{sys}\taskkill.exe"; Parameters: "/F /T /IM {#AppExe}"; Flags: runhidden; RunOnceId: "StopAvaTray"

[UninstallDelete]
; Only what the app itself may leave in its program folder; never the user's data (see [Code]).
Type: filesandordirs; Name: "{app}"

[Code]
var
  RemoveUserData: Boolean;

procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
var
  ResultCode: Integer;
begin
  if CurUninstallStep = usUninstall then
  begin
    { The program is going away: so does its start-at-login entry, however it was set. }
    RegDeleteValue(HKEY_CURRENT_USER, '{#RunKey}', '{#RunValue}');
    RemoveUserData := False;
    if (not UninstallSilent) and DirExists(ExpandConstant('{#DataDir}')) then
      RemoveUserData := MsgBox('Also remove your AVA Tray settings, reconnect history and logs, and the API key '
        + 'saved in Windows Credential Manager?' + #13#10#13#10 + ExpandConstant('{#DataDir}') + #13#10#13#10
        + 'Choose No to keep them for a later install.', mbConfirmation, MB_YESNO or MB_DEFBUTTON2) = IDYES;
    if RemoveUserData then
      Exec(ExpandConstant('{app}\{#AppExe}'), '--forget-key', '', SW_HIDE, ewWaitUntilTerminated, ResultCode);
  end;
  if (CurUninstallStep = usPostUninstall) and RemoveUserData then
    DelTree(ExpandConstant('{#DataDir}'), True, True, True);
end;
